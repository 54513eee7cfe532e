/**
 * The GUC module's surface: the `Guc` object, the parameter table and the
 * pieces a caller needs to read postgresql.conf through its own reader.
 *
 * @module
 */

export { ConfigFileError, Guc } from "./guc.ts";
export type {
  GucChange,
  GucDescription,
  GucOptions,
  GucSnapshot,
  ReloadResult,
  SetOptions,
} from "./guc.ts";
export { parseConfigFile } from "./parser.ts";
export type { ConfigItem, ConfigReader, ParseResult } from "./parser.ts";
export { DEFAULT_PRELOAD_EXPORT, parsePreloadLibraries } from "./preload.ts";
export { PARAMETERS, SERVER_VERSION, SERVER_VERSION_NUM } from "./tables.ts";
export type { GucUnit } from "./units.ts";
export { formatValue, parseBool, parseValue, splitList } from "./values.ts";
export type { GucContext, GucSource, GucValue, ParamDef } from "./values.ts";
