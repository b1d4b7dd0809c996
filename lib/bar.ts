/**
 * One progress bar line, as tqdm draws it, fitted to a terminal's width: byte counts and
 * durations in words, and the width of text in terminal columns (a CJK character takes two).
 *
 * @module
 */

import { eastAsianWidth } from "get-east-asian-width";

/** Formats a byte count like tqdm with unit_divisor=1024: `1.50 MiB`. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0
    ? `${Math.round(n)} B`
    : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`;
}

/** Formats seconds as m:ss or h:mm:ss. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/** Columns a bar line may use when the terminal's width is unknown. */
export const DEFAULT_COLUMNS = 100;
/** The bar itself, at most and at least (when there is no room, the numbers go first). */
const BAR_MAX = 24;
const BAR_MIN = 6;
/** A label shorter than this gives its room to nobody: the numbers go first. */
const LABEL_MIN = 12;

/** Combining marks and format characters: they take no column of their own. */
const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Cf}]$/u;

/** Columns one character takes on a terminal: 0, 1, or 2 (CJK, fullwidth, most emoji). */
function charWidth(char: string): number {
  return ZERO_WIDTH.test(char) ? 0 : eastAsianWidth(char.codePointAt(0)!);
}

/** Columns `text` takes on a terminal (ferry's labels are escaped: no control characters). */
export function displayWidth(text: string): number {
  let width = 0;
  for (const char of text) width += charWidth(char);
  return width;
}

/** The end of `text` that fits in `width` columns, marked with `…` when cut, padded to width. */
function fitEnd(text: string, width: number): string {
  const full = displayWidth(text);
  if (full <= width) return text + " ".repeat(width - full);
  const chars = [...text];
  let kept = "";
  let used = 1;
  for (let i = chars.length - 1; i >= 0; i--) {
    const w = charWidth(chars[i]!);
    if (used + w > width) break;
    kept = chars[i] + kept;
    used += w;
  }
  return "…" + kept + " ".repeat(width - used);
}

/**
 * One bar line: `name  42% |████▏     | 420 MiB/1.00 GiB  390 MiB/s  ETA 0:02`, made to fit
 * `columns` less one (a line that reaches the last column wraps on some terminals, and then a
 * redraw no longer knows how many rows it drew). As the terminal narrows, the ETA goes first,
 * then the rate, then the byte counts, then the bar shrinks; the label keeps what is left,
 * measured in display columns (a CJK character takes two). `resumed` bytes were already there:
 * they count towards the bar but not towards the rate.
 */
export function renderBar(
  label: string,
  bytes: number,
  size: number,
  seconds: number,
  resumed = 0,
  columns = DEFAULT_COLUMNS,
): string {
  // Standard input comes with no size: its bar counts bytes, with no percent and no ETA (from
  // its very start: "0 B/0 B" at 100% would say it is done). An empty file shows the same.
  const unknown = size === 0;
  const fraction = unknown ? 0 : size > 0 ? Math.min(1, bytes / size) : 1;
  const rate = seconds > 0 ? (bytes - resumed) / seconds : 0;
  const eta = rate > 0 ? (size - bytes) / rate : NaN;
  const pct = unknown ? "    " : `${Math.floor(fraction * 100)}%`.padStart(4);
  const extras = [
    unknown ? ` ${formatBytes(bytes)}` : ` ${formatBytes(bytes)}/${formatBytes(size)}`,
    `  ${formatBytes(rate)}/s`,
    ...(unknown ? [] : [`  ETA ${formatDuration(eta)}`]),
  ];
  const room = Math.max(1, columns - 1);
  // label, space, pct, " |", bar, "|", extras
  const fixed = () => 1 + pct.length + 3 + extras.join("").length;
  while (extras.length > 0 && room - fixed() - BAR_MAX < LABEL_MIN) extras.pop();
  const width = Math.max(BAR_MIN, Math.min(BAR_MAX, room - fixed() - LABEL_MIN));
  const labelWidth = Math.max(1, room - fixed() - width);
  const eighths = Math.round(fraction * width * 8);
  const full = Math.floor(eighths / 8);
  const partial = eighths % 8;
  const bar = "█".repeat(full) + (partial ? " ▏▎▍▌▋▊▉"[partial] : "") +
    " ".repeat(width - full - (partial ? 1 : 0));
  // Wide terminals: the label gets the room it needs, up to 28 columns as before.
  const shown = fitEnd(label, Math.min(labelWidth, Math.max(28, displayWidth(label))));
  return `${shown} ${pct} |${bar}|${extras.join("")}`;
}
