/**
 * The terminal mode of lib/report.ts: tqdm-like bars on stderr, fitted to the terminal's width
 * and redrawn in place at most ten times a second, that step aside for lines of text.
 *
 * @module
 */

import { DEFAULT_COLUMNS, displayWidth } from "./bar.ts";

/** Bar redraws per second, at most. */
const BAR_REDRAWS_PER_SECOND = 10;

const encoder = new TextEncoder();

/** Writes to stderr now (bars and the lines between them must not interleave). */
export function writeErr(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text));
}

/** The bars on the screen: what was drawn last, and when the next redraw may come. */
export class BarScreen {
  /** The bar lines to show now, for a terminal `columns` wide. */
  #lines: (columns: number) => string[];
  /** Display widths of the bar lines drawn last, top to bottom. */
  #drawnWidths: number[] = [];
  /** A redraw that was too soon, waiting for its time. */
  #redraw: ReturnType<typeof setTimeout> | undefined;
  #lastDraw = 0;

  constructor(lines: (columns: number) => string[]) {
    this.#lines = lines;
  }

  /** Whether bars are on the screen now. */
  get drawn(): boolean {
    return this.#drawnWidths.length > 0;
  }

  /** A line of text: the bars step aside (cleared, then drawn again below it). */
  say(text: string): void {
    const bars = this.drawn;
    this.clear();
    writeErr(`${text}\n`);
    if (bars) this.draw(true);
  }

  /** Leaves `lines` on the screen for good, above the bars still running (a last bar). */
  keep(lines: (columns: number) => string[]): void {
    this.clear();
    writeErr(lines(this.columns()).map((line) => `${line}\n`).join(""));
  }

  /** Takes the bars off the screen (and any redraw still to come). */
  stop(): void {
    clearTimeout(this.#redraw);
    this.#redraw = undefined;
    this.clear();
  }

  /**
   * Moves the cursor up over the bars drawn last, and clears them. A terminal that re-wraps its
   * lines when it narrows (tmux, most terminal emulators) may have made more rows of them.
   */
  clear(): void {
    const undo = this.#unDraw();
    if (undo) writeErr(undo);
  }

  /** The terminal's width now (it may have been resized since the last draw). */
  columns(): number {
    try {
      return Deno.consoleSize().columns || DEFAULT_COLUMNS;
    } catch {
      return DEFAULT_COLUMNS;
    }
  }

  /** Draws the bars again; at most ten times a second unless `force`. */
  draw(force: boolean): void {
    const now = performance.now();
    const wait = this.#lastDraw + 1000 / BAR_REDRAWS_PER_SECOND - now;
    if (!force && wait > 0) {
      // Too soon: draw once the time comes, or a burst followed by a pause (stdin that stops
      // for a while) would leave its bar showing what it was before the burst.
      if (this.#redraw === undefined) {
        this.#redraw = setTimeout(() => {
          this.#redraw = undefined;
          this.draw(false);
        }, wait);
        Deno.unrefTimer(this.#redraw);
      }
      return;
    }
    clearTimeout(this.#redraw);
    this.#redraw = undefined;
    this.#lastDraw = now;
    const columns = this.columns();
    const lines = this.#lines(columns);
    // One write: the old bars cleared and the new ones drawn, without a visible blank between.
    writeErr(this.#unDraw(columns) + lines.map((line) => `${line}\n`).join(""));
    this.#drawnWidths = lines.map((line) => displayWidth(line));
  }

  /** What {@linkcode BarScreen.clear} writes: nothing when no bars are drawn. */
  #unDraw(columns?: number): string {
    if (this.#drawnWidths.length === 0) return "";
    columns ??= this.columns();
    const rows = this.#drawnWidths.reduce((n, w) => n + Math.max(1, Math.ceil(w / columns)), 0);
    this.#drawnWidths = [];
    return `\x1b[${rows}F\x1b[J`;
  }
}
