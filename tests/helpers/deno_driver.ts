/**
 * Runs the launcher checks under Deno and prints one JSON object with the
 * results, for tests/adapters/deno.test.ts (bun:test cannot host Deno code
 * itself). Usage: deno run -A tests/helpers/deno_driver.ts
 */

import { DenoSubprocessLauncher } from "../../src/adapters/deno/launcher.ts";
import { DenoNetAdapter } from "../../src/adapters/deno/net.ts";
import { WorkerLauncher } from "../../src/adapters/worker/launcher.ts";
import {
  checkEarlySignal,
  checkEcho,
  checkExits,
  checkHandoff,
  checkPooledReuse,
  checkSignals,
  checkStaleUnixSocket,
  MAINS,
} from "./launcher_checks.ts";

async function attempt<T>(fn: () => Promise<T>): Promise<T | { error: string }> {
  try {
    return await fn();
  } catch (error) {
    return { error: String(error) };
  }
}

const results: Record<string, unknown> = {};
const net = new DenoNetAdapter();
for (const launcher of [new DenoSubprocessLauncher(), new WorkerLauncher()]) {
  results[launcher.name] = {
    echo: await attempt(() => checkEcho(launcher)),
    signals: await attempt(() => checkSignals(launcher)),
    earlySignal: await attempt(() => checkEarlySignal(launcher)),
    exits: await attempt(() => checkExits(launcher)),
    tcp: await attempt(() => checkHandoff(launcher, net, "tcp")),
    unix: await attempt(() => checkHandoff(launcher, net, "unix")),
  };
  await launcher.close();
}
results.pooledWorker = await attempt(() =>
  checkPooledReuse(new WorkerLauncher({ pool: { size: 1, module: MAINS } }), net)
);
results.stale = await attempt(() =>
  checkStaleUnixSocket(net, (path) => {
    new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import net from "node:net"; net.createServer().listen(${
          JSON.stringify(path)
        }, () => Deno.exit(0));`,
      ],
    }).outputSync();
  })
);
console.log(JSON.stringify(results));
// Children are all gone; nothing else should keep the driver alive.
Deno.exit(0);
