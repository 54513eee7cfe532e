/**
 * The role boundary through the HTTP adapter's `POST /sql` (Neon's protocol):
 * a batch sent as an ordinary role cannot set session_authorization and then
 * read pg_authid, by any spelling, and the role's next request is still that
 * role.
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import { HttpServer } from "../../src/http/mod.ts";

let server: HttpServer;

beforeAll(async () => {
  // app.request has no client address: a line for 0.0.0.0 admits it.
  server = await HttpServer.start({ hba: "host all all 0.0.0.0/32 trust\n" });
}, 120_000);

afterAll(async () => {
  await server?.stop("fast");
});

function post(user: string, body: unknown) {
  return server.app.request("/sql", {
    method: "POST",
    headers: { "Neon-Connection-String": `postgres://${user}@localhost/postgres` },
    body: JSON.stringify(body),
  });
}

test("an ordinary role's /sql batch cannot become postgres and read pg_authid", async () => {
  const setup = await post("postgres", { query: "create role mallory login" });
  expect(setup.status).toBe(200);

  const batches: unknown[] = [
    {
      queries: [
        { query: "select set_config('session_authorization', 'postgres', false)" },
        { query: "select rolname, rolpassword from pg_authid" },
      ],
    },
    {
      queries: [
        { query: "SET SESSION AUTHORIZATION postgres" },
        { query: "select rolname, rolpassword from pg_authid" },
      ],
    },
    {
      queries: [
        { query: "DO $$ begin execute 'set session authorization postgres'; end $$" },
        { query: "select count(*) from pg_authid" },
      ],
    },
    { query: "select set_config($1, $2, false)", params: ["session_authorization", "postgres"] },
  ];
  for (const body of batches) {
    const res = await post("mallory", body);
    const answer = await res.json();
    expect({ body, status: res.status, code: answer.code }).toEqual({
      body,
      status: 400,
      code: "42501",
    });
    expect(JSON.stringify(answer)).not.toContain("SCRAM-SHA-256");
  }

  const who = await post("mallory", {
    query: "select current_user as u, session_user as s, current_setting('is_superuser') as sup",
  });
  expect((await who.json()).rows).toEqual([{ u: "mallory", s: "mallory", sup: "off" }]);
});
