/**
 * Runs tests/fixtures/php/pgts_pdo.php, a PHP application's use of PDO's
 * PostgreSQL driver, against a server. scripts/ensure-php.sh installs PHP
 * and the driver from Debian when they are missing.
 */

import { join } from "node:path";
import { ensured, programLines, ROOT } from "./programs.ts";

/** The interpreter with PDO pgsql, or null (and why) when it cannot be installed here. */
export function phpPdo(): { php: string | null; why: string } {
  const r = ensured("ensure-php.sh");
  return { php: r.path, why: r.why };
}

/** The lines pgts_pdo.php printed against `database` (empty, made by the caller). */
export function runPdo(
  php: string,
  target: { host: string; port: number; user: string; database: string },
): Promise<string[]> {
  return programLines([
    php,
    join(ROOT, "tests/fixtures/php/pgts_pdo.php"),
    target.host,
    String(target.port),
    target.user,
    target.database,
  ]);
}

/** What pgts_pdo.php prints against PostgreSQL 15 (run by hand, 2026-12-04). */
export const PDO_LINES = [
  "ids: [1,2,3,4,5,6,7,8,9]",
  'row: {"name":"b0","price":"3.00","tags":"{x,y}","k":"1","hex":"0001ff"}',
  "prepared statements: 2",
  'after rollback: "27.00"',
  'unique: "23505"',
  "emulated: 3",
  'lastInsertId: "11"',
  "copy to: 11",
  'notify: ["php_chan","hi"]',
  'large object: "blob data"',
];
