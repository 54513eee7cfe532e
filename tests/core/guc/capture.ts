/** Captures what ereport logs through LogTape, for tests that assert on server messages. */

import { configureSync, type LogRecord, resetSync } from "@logtape/logtape";

export function captureLogs(): {
  messages: () => string[];
  records: LogRecord[];
  stop: () => void;
} {
  const records: LogRecord[] = [];
  configureSync({
    reset: true,
    sinks: { capture: (r: LogRecord) => void records.push(r) },
    loggers: [
      { category: ["pgts"], sinks: ["capture"], lowestLevel: "trace" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "error" },
    ],
  });
  return {
    records,
    messages: () => records.map((r) => String(r.properties.message)),
    stop: () => resetSync(),
  };
}
