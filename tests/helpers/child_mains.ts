/**
 * Child mains the adapter tests and scripts/bench/children.ts launch: each
 * exercises one part of what a ChildEnv offers.
 */

import type { ChildEnv } from "../../src/core/adapter.ts";

/** Posts "ready", echoes messages, reports signals, exits with the code it is told. */
export function echoMain(env: ChildEnv): Promise<number> {
  return new Promise((resolve) => {
    for (const sig of ["SIGHUP", "SIGINT", "SIGTERM", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const) {
      env.onSignal(sig, () => env.post({ signal: sig }));
    }
    env.onMessage = (m) => {
      const msg = m as { exit?: number; throw?: string; echo?: unknown };
      if (msg.exit !== undefined) resolve(msg.exit);
      else if (msg.throw !== undefined) {
        setTimeout(() => {
          throw new Error(msg.throw);
        }, 0);
      } else env.post({ echo: msg.echo, pid: env.pid, kind: env.kind, params: env.params });
    };
    env.post("ready");
  });
}

/** Posts "ready" and idles until SIGTERM (for start latency and idle RSS). */
export function idleMain(env: ChildEnv): Promise<number> {
  return new Promise((resolve) => {
    env.onSignal("SIGTERM", () => resolve(0));
    env.onMessage = () => resolve(0);
    env.post("ready");
  });
}

/** Throws at once: an uncaught exception in a child's main. */
export function throwingMain(_env: ChildEnv): never {
  throw new Error("boom in child main");
}

/** Has no SIGTERM handler: the signal's default action ends it. */
export function unhandledMain(env: ChildEnv): Promise<number> {
  env.post("ready");
  return new Promise(() => {});
}

/**
 * Serves the client itself: greets with its pid, echoes lines prefixed with
 * "child:", and exits 0 on "quit" (the client must then see the close).
 */
export function clientMain(env: ChildEnv): Promise<number> {
  const client = env.client;
  if (client === null) return Promise.resolve(3);
  return new Promise((resolve) => {
    const enc = new TextEncoder();
    const dec = new TextDecoder();
    client.onData = (chunk) => {
      const text = dec.decode(chunk);
      if (text.includes("quit")) {
        client.write(enc.encode("bye\n"));
        resolve(0);
      } else client.write(enc.encode(`child:${text}`));
    };
    client.onClose = () => resolve(0);
    client.resume();
    client.write(enc.encode(`hello from ${env.pid}\n`));
    env.post("ready");
  });
}

/**
 * Serves its client as `clientMain` does, and leaves things behind when it
 * ends: a SIGUSR1 handler, and a timer that posts and writes to its client
 * 100 ms after its main returned. A reused child's next run must see none
 * of them (checkPooledReuse).
 */
export function litteringMain(env: ChildEnv): Promise<number> {
  env.onSignal("SIGUSR1", () => env.post("stale SIGUSR1 handler"));
  const ended = clientMain(env);
  void ended.then(() => {
    setTimeout(() => {
      env.post("stale timer");
      env.client?.write(new TextEncoder().encode("stale write\n"));
    }, 100);
  });
  return ended;
}
