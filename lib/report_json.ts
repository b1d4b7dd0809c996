/**
 * The `--json` mode of lib/report.ts: one JSON object per line on stdout. Field names are part
 * of the CLI contract (README, "Scripting").
 *
 * @module
 */

import { writeOut } from "./io.ts";

/** JSON progress events per transfer per second, at most. */
const JSON_PROGRESS_PER_SECOND = 4;

/** Events on stdout, with progress events thinned out per transfer. */
export class JsonEvents {
  #lastProgress = new Map<string, number>();

  /** One event line. */
  event(name: string, fields: Record<string, unknown> = {}): void {
    writeOut(JSON.stringify({ event: name, ...fields }) + "\n");
  }

  /** A `progress` event for transfer `conn`, unless one went out less than 250 ms ago. */
  progress(conn: string, fields: Record<string, unknown>): void {
    const now = performance.now();
    if (now - (this.#lastProgress.get(conn) ?? 0) < 1000 / JSON_PROGRESS_PER_SECOND) return;
    this.#lastProgress.set(conn, now);
    this.event("progress", { conn, ...fields });
  }

  /** Transfer `conn` is over. */
  forget(conn: string): void {
    this.#lastProgress.delete(conn);
  }
}
