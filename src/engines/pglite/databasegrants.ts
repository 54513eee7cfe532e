/**
 * GRANT and REVOKE on a database other than the engine's own are refused
 * inside the engine. Each database is an engine of its own, whose
 * pg_database lists the other databases in rows that are copies of pgts's
 * list (pg_database.ts); a privilege granted in such a row stayed there,
 * and the copy made again at the next change dropped it. So `REVOKE
 * CONNECT ON DATABASE app FROM PUBLIC`, run while connected to "postgres",
 * did nothing. Run while connected to the database itself, it changes that
 * database's own row, which the engine keeps and the login checks
 * (postinit.ts's connectRestricted, engine.ts); sent alone from another
 * database, outside a transaction block, the cluster runs it on each named
 * database's engine (dbcommands.ts's onDatabasesEngines), and only the rest
 * (in a block, beside other statements, in a function) reaches this guard.
 */

import {
  listCells,
  onUtilityStatement,
  parsedStatement,
  stringNodeValue,
  type WasmTools,
} from "./wasmtools.ts";

interface DatabaseGrantExports {
  MyDatabaseId: WebAssembly.Global;
  get_database_name(oid: number): number;
}

export function installDatabaseGrantGuard(
  tools: WasmTools,
  session: { running(): boolean; databasesChanged(): void },
): void {
  const ex = tools.ex as typeof tools.ex & DatabaseGrantExports;
  if (
    !(ex.MyDatabaseId instanceof WebAssembly.Global) || typeof ex.get_database_name !== "function"
  ) {
    throw new Error("PGlite does not export MyDatabaseId and get_database_name");
  }
  const myDatabaseId = ex.MyDatabaseId.value as number;
  // GrantStmt's tag, and where its objtype and objects are, from the parser.
  const onDatabase = parsedStatement(tools, "GRANT CONNECT ON DATABASE pgts_probe TO PUBLIC");
  const onSchema = parsedStatement(tools, "GRANT USAGE ON SCHEMA pgts_probe TO PUBLIC");
  const v = tools.view();
  const tag = v.getUint32(onDatabase, true);
  // The objects List is the field whose one cell is the String "pgts_probe";
  // the fields before it are small integers, not addresses of a List.
  const names = (list: number): string[] =>
    listCells(tools, list).map((n) => stringNodeValue(tools, n));
  let objectsAt = -1;
  for (let at = 8; at < 32 && objectsAt < 0; at += 4) {
    const field = v.getUint32(onDatabase + at, true);
    if (field >= 4096 && field < v.byteLength && names(field)[0] === "pgts_probe") objectsAt = at;
  }
  // objtype is the field before the objects; it tells the two statements apart.
  const objtypeAt = objectsAt - 4;
  if (
    v.getUint32(onSchema, true) !== tag || objectsAt < 0 ||
    v.getInt32(onDatabase + objtypeAt, true) === v.getInt32(onSchema + objtypeAt, true)
  ) {
    throw new Error("PGlite's GrantStmt has an unknown layout");
  }
  const databaseObjtype = v.getInt32(onDatabase + objtypeAt, true);

  onUtilityStatement(tools, (stmt) => {
    if (!session.running()) return;
    const view = tools.view();
    if (view.getUint32(stmt, true) !== tag) return;
    if (view.getInt32(stmt + objtypeAt, true) !== databaseObjtype) return;
    const own = tools.readCString(ex.get_database_name(view.getUint32(myDatabaseId, true)));
    // Its own: the login's check reads the privileges again after it (in a
    // function too, where naming.ts does not see it).
    session.databasesChanged();
    for (const name of names(view.getUint32(stmt + objectsAt, true))) {
      if (name === own) continue;
      tools.raise(
        "0A000",
        `GRANT and REVOKE on database "${name}" cannot run here: inside a transaction block,` +
          " with other statements or in a function",
        "Each database of a pgts cluster is an engine of its own, which keeps that database's" +
          " privileges; pgts carries out a GRANT or REVOKE on another database sent alone," +
          " outside a transaction block.",
        {
          hint: `Send it as a query of its own, or connect to database "${name}" and run it there.`,
        },
      );
    }
  });
}
