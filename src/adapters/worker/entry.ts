/**
 * The entry module of a child that is a Web Worker (WorkerLauncher), run
 * from source: see worker_child.ts.
 */

import { serveWorkerChild } from "./child.ts";

serveWorkerChild();
