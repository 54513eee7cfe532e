/**
 * Runtime-neutral checks of a ChildLauncher + NetAdapter pair, run by the Bun
 * tests in-process and by deno_driver.ts under Deno. Each returns plain data
 * the tests assert on; each cleans up the children it started.
 */

import net from "node:net";
import os from "node:os";
import path from "node:path";
import fs from "node:fs";
import type {
  AcceptedConnection,
  ChildLauncher,
  ChildProcess,
  NetAdapter,
} from "../../src/core/adapter.ts";
import { tcpSocketFds, unixSocketFds } from "./fdcheck.ts";

/** The module of the test mains (child_mains.ts), for a launcher's pool to load ahead. */
export const MAINS = new URL("./child_mains.ts", import.meta.url).href;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function entry(name: string) {
  return { module: MAINS, export: name };
}

function nextMessage(child: ChildProcess, pred: (m: unknown) => boolean, ms = 10_000) {
  return new Promise<unknown>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("timed out waiting for a message")), ms);
    const prev = child.onMessage;
    child.onMessage = (m) => {
      if (pred(m)) {
        clearTimeout(timer);
        child.onMessage = prev;
        resolve(m);
      }
    };
  });
}

const ready = (c: ChildProcess) => nextMessage(c, (m) => m === "ready");

async function withChild<T>(
  launcher: ChildLauncher,
  main: string,
  body: (c: ChildProcess) => Promise<T>,
): Promise<T> {
  const child = await launcher.launch({
    kind: "test",
    name: main,
    entry: entry(main),
    params: { n: 1 },
  });
  try {
    return await body(child);
  } finally {
    child.signal("SIGKILL");
    await child.exited;
  }
}

export function checkEcho(launcher: ChildLauncher) {
  return withChild(launcher, "echoMain", async (c) => {
    await ready(c);
    const reply = nextMessage(c, (m) => typeof m === "object" && m !== null && "echo" in m);
    c.post({ echo: { bytes: new Uint8Array([1, 2, 3]) } });
    const echoed = (await reply) as { echo: { bytes: Uint8Array }; pid: number; params: unknown };
    return {
      echoed: [...echoed.echo.bytes],
      pidMatches: echoed.pid === c.pid,
      params: echoed.params,
    };
  });
}

export function checkSignals(launcher: ChildLauncher) {
  return withChild(launcher, "echoMain", async (c) => {
    await ready(c);
    const got: string[] = [];
    for (const sig of ["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGINT", "SIGQUIT", "SIGTERM"] as const) {
      const m = nextMessage(c, (x) => (x as { signal?: string })?.signal === sig);
      c.signal(sig);
      got.push(((await m) as { signal: string }).signal);
    }
    c.post({ exit: 7 });
    return { got, exit: await c.exited };
  });
}

/**
 * A SIGTERM sent right after launch, before the child has loaded its main,
 * waits for the main's handler instead of killing the child.
 */
export function checkEarlySignal(launcher: ChildLauncher) {
  return withChild(launcher, "echoMain", async (c) => {
    const m = nextMessage(c, (x) => (x as { signal?: string })?.signal === "SIGTERM");
    c.signal("SIGTERM");
    const got = ((await m) as { signal: string }).signal;
    c.post({ exit: 0 });
    return { got, exit: await c.exited };
  });
}

export async function checkExits(launcher: ChildLauncher) {
  const killed = await launcher.launch({
    kind: "test",
    name: "k",
    entry: entry("echoMain"),
    params: null,
  });
  await ready(killed);
  killed.signal("SIGKILL");
  const thrown = await launcher.launch({
    kind: "test",
    name: "t",
    entry: entry("throwingMain"),
    params: null,
  });
  const unhandled = await launcher.launch({
    kind: "test",
    name: "u",
    entry: entry("unhandledMain"),
    params: null,
  });
  await ready(unhandled);
  unhandled.signal("SIGTERM");
  const later = await launcher.launch({
    kind: "test",
    name: "l",
    entry: entry("echoMain"),
    params: null,
  });
  await ready(later);
  later.post({ throw: "boom later" });
  return {
    sigkill: await killed.exited,
    throwInMain: await thrown.exited,
    unhandledSigterm: await unhandled.exited,
    throwLater: await later.exited,
  };
}

/** Accepts one client on `family`, hands it to a child, talks to the child through it. */
export async function checkHandoff(
  launcher: ChildLauncher,
  adapter: NetAdapter,
  family: "tcp" | "unix",
) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgts-handoff-"));
  const sockPath = path.join(dir, ".s.PGSQL.5432");
  let child: ChildProcess | null = null;
  const launched = Promise.withResolvers<ChildProcess>();
  const listener = await adapter.listen(
    family === "tcp" ? { family, host: "127.0.0.1", port: 0 } : { family, path: sockPath },
    (conn: AcceptedConnection) => {
      launcher.launch({
        kind: "backend",
        name: "client backend",
        entry: entry("clientMain"),
        params: null,
        client: conn,
      }).then(launched.resolve, launched.reject);
    },
  );
  const client = family === "tcp"
    ? net.connect((listener.address as { port: number }).port, "127.0.0.1")
    : net.connect(sockPath);
  let received = "";
  const closed = new Promise<void>((resolve) => client.on("close", () => resolve()));
  client.on("error", () => {});
  const waitFor = (text: string) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no "${text}" from child: ${received}`)),
        10_000,
      );
      const check = () => {
        if (received.includes(text)) {
          clearTimeout(timer);
          client.off("data", onData);
          resolve();
        }
      };
      const onData = (d: Uint8Array) => {
        received += new TextDecoder().decode(d);
        check();
      };
      client.on("data", onData);
      check();
    });
  try {
    child = await launched.promise;
    await waitFor("hello from");
    const parentFds = family === "tcp"
      ? tcpSocketFds((listener.address as { port: number }).port, client.localPort!)
      : unixSocketFds(sockPath) - 1; // minus the listener
    client.write("ping\n");
    await waitFor("child:ping");
    client.write("quit\n");
    await waitFor("bye");
    await closed;
    return {
      greetedByChildPid: received.includes(`hello from ${child.pid}`),
      parentFds,
      echoed: received.includes("child:ping"),
      clientSawClose: true,
      exit: await child.exited,
    };
  } finally {
    client.destroy();
    child?.signal("SIGKILL");
    await child?.exited;
    await listener.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** What checkPooledReuse finds when the second run saw nothing of the first. */
export const POOLED_REUSE = {
  firstExit: { code: 0, signal: null },
  firstGreetedWithItsPid: true,
  samePid: true,
  secondGreetedWithItsPid: true,
  secondHeard: [],
  secondClientGotStaleWrite: false,
  secondExit: { code: null, signal: "SIGUSR1" },
};

/**
 * A launcher with a pool of one (`pool: { size: 1, module: MAINS }`) serves
 * a client whose main ends cleanly, then the next client on the same child
 * (same pid), which sees nothing of the first run: not the timer it left
 * (its message, its write), nor its SIGUSR1 handler (the next main has
 * none, so SIGUSR1 ends it by the default action).
 */
export async function checkPooledReuse(launcher: ChildLauncher, adapter: NetAdapter) {
  const launches: Array<Promise<ChildProcess>> = [];
  const mains = ["litteringMain", "clientMain"];
  const listener = await adapter.listen(
    { family: "tcp", host: "127.0.0.1", port: 0 },
    (conn: AcceptedConnection) => {
      launches.push(launcher.launch({
        kind: "backend",
        name: "client backend",
        entry: entry(mains[launches.length]!),
        params: null,
        client: conn,
      }));
    },
  );
  const port = (listener.address as { port: number }).port;
  const talk = async (lines: string[], expectClose: boolean) => {
    const client = net.connect(port, "127.0.0.1");
    client.on("error", () => {});
    let received = "";
    client.on("data", (d: Uint8Array) => (received += new TextDecoder().decode(d)));
    const closed = new Promise<void>((resolve) => client.on("close", () => resolve()));
    const until = async (text: string) => {
      for (let i = 0; i < 500 && !received.includes(text); i++) await sleep(20);
      if (!received.includes(text)) throw new Error(`no "${text}" from child: ${received}`);
    };
    await until("hello from");
    for (const line of lines) client.write(line);
    if (expectClose) {
      await until("bye");
      await closed;
    }
    return { client, received: () => received, closed };
  };
  const children: ChildProcess[] = [];
  try {
    const first = await talk(["quit\n"], true);
    const a = await launches[0]!;
    children.push(a);
    const aExit = await a.exited;
    // The pool takes the child back once it has read its exit.
    await sleep(50);
    const second = await talk([], false);
    const b = await launches[1]!;
    children.push(b);
    const heard: unknown[] = [];
    b.onMessage = (m) => heard.push(m);
    // Past the first run's timer.
    await sleep(300);
    b.signal("SIGUSR1");
    const bExit = await b.exited;
    second.client.destroy();
    return {
      firstExit: aExit,
      firstGreetedWithItsPid: first.received().includes(`hello from ${a.pid}`),
      samePid: b.pid === a.pid,
      secondGreetedWithItsPid: second.received().includes(`hello from ${b.pid}`),
      secondHeard: heard.filter((m) => m !== "ready"),
      secondClientGotStaleWrite: second.received().includes("stale"),
      secondExit: bExit,
    };
  } finally {
    for (const c of children) c.signal("SIGKILL");
    await Promise.all(children.map((c) => c.exited));
    await listener.close();
    await launcher.close();
  }
}

/** A stale socket file from a dead server is removed; the listener binds. */
export async function checkStaleUnixSocket(
  adapter: NetAdapter,
  makeStale: (path: string) => void,
) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgts-stale-"));
  const sockPath = path.join(dir, ".s.PGSQL.5432");
  try {
    makeStale(sockPath);
    const staleLeft = fs.lstatSync(sockPath).isSocket();
    const listener = await adapter.listen({ family: "unix", path: sockPath }, (c) => c.destroy());
    const bound = await new Promise<boolean>((resolve) => {
      const c = net.connect(sockPath);
      c.on("connect", () => {
        c.destroy();
        resolve(true);
      });
      c.on("error", () => resolve(false));
    });
    // A second listener on the same live path must be refused.
    const second = await adapter.listen({ family: "unix", path: sockPath }, () => {}).then(
      async (l) => {
        await l.close();
        return "bound";
      },
      (e: unknown) => String(e),
    );
    await listener.close();
    return { staleLeft, bound, second, removedOnClose: !fs.existsSync(sockPath) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
