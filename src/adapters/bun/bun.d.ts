/**
 * The slice of Bun's API that src/adapters/bun uses, declared here so that
 * `deno check` passes without @types/bun. Nothing is declared globally (that
 * would collide with @types/bun); code reaches Bun through `bunApi()` in
 * net.ts, typed by these interfaces.
 */

export interface BunSocket<Data> {
  data: Data;
  readonly fd: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress?: string;
  readonly localPort?: number;
  write(data: Uint8Array): number;
  end(): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  /** SO_KEEPALIVE, with the idle time before the first probe (ms) when given. */
  setKeepAlive(enable: boolean, initialDelay?: number): boolean;
  /** Replaces the socket's handlers (Bun's `socket.reload({ socket })`). */
  reload(options: { socket: BunSocketHandler<Data> }): void;
}

export interface BunSocketHandler<Data> {
  open?(socket: BunSocket<Data>): void;
  data?(socket: BunSocket<Data>, chunk: Uint8Array): void;
  drain?(socket: BunSocket<Data>): void;
  close?(socket: BunSocket<Data>, error?: Error): void;
  error?(socket: BunSocket<Data>, error: Error): void;
  end?(socket: BunSocket<Data>): void;
}

export interface BunTCPListener {
  readonly port: number;
  readonly hostname: string;
  stop(closeActiveConnections?: boolean): void;
}

export type BunListenOptions<Data> =
  | { hostname: string; port: number; ipv6Only?: boolean; socket: BunSocketHandler<Data> }
  | { unix: string; socket: BunSocketHandler<Data> };

export interface BunSubprocess {
  readonly pid: number;
  readonly exited: Promise<number>;
  readonly exitCode: number | null;
  readonly signalCode: string | null;
  kill(signal?: string | number): void;
  send(message: unknown, handle?: unknown): void;
  disconnect(): void;
}

export interface BunSpawnOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  stdio?: Array<"inherit" | "ignore" | "pipe" | number>;
  ipc?(message: unknown, subprocess: BunSubprocess, handle?: unknown): void;
  serialization?: "json" | "advanced";
  onExit?(
    subprocess: BunSubprocess,
    exitCode: number | null,
    signalCode: number | null,
    error?: Error,
  ): void;
}

export interface BunApi {
  readonly version: string;
  readonly main: string;
  spawn(cmd: string[], options: BunSpawnOptions): BunSubprocess;
  listen<Data>(options: BunListenOptions<Data>): BunTCPListener;
  connect<Data>(options: { fd: number; socket: BunSocketHandler<Data> }): Promise<BunSocket<Data>>;
}
