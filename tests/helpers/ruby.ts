/**
 * Runs tests/fixtures/ruby/pgts_activerecord.rb, a Rails application's use of
 * ActiveRecord, against a server. scripts/ensure-ruby.sh installs Ruby,
 * ActiveRecord and the pg gem from Debian when they are missing.
 */

import { join } from "node:path";
import { ensured, programLines, ROOT } from "./programs.ts";

/** The interpreter that has ActiveRecord, or null (and why) when it cannot be installed here. */
export function rubyActiveRecord(): { ruby: string | null; why: string } {
  const r = ensured("ensure-ruby.sh");
  return { ruby: r.path, why: r.why };
}

/** The lines pgts_activerecord.rb printed against the server on 127.0.0.1:`port`. */
export function runActiveRecord(ruby: string, port: number): Promise<string[]> {
  return programLines([ruby, join(ROOT, "tests/fixtures/ruby/pgts_activerecord.rb"), String(port)]);
}

/** What pgts_activerecord.rb prints against PostgreSQL 15 (run by hand, 2026-12-04). */
export const ACTIVERECORD_LINES = [
  "count 10 sum 67.5",
  'find 4.5 {"i"=>3} ["a", "b3"]',
  "unique ActiveRecord::RecordNotUnique",
  "after rollback 0",
  "where w4,w5,w6,w7,w8,w9",
  "threads 40",
  "update 99.0",
  "advisory true true",
  'tables true indexes ["index_widgets_on_name"]',
  "columns id:bigint,name:character varying,price:numeric(10,2),meta:jsonb,tags:character varying,created_at:timestamp(6) without time zone,updated_at:timestamp(6) without time zone",
  "lock ok",
];
