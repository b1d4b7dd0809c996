/**
 * Deno's permissions, checked when a script starts rather than when the first file arrives.
 * Without this a missing `--allow-read` looks like "--dir X is not a folder", a missing
 * `--allow-write` is found mid-transfer, and plain `deno run receiver.ts` stops to ask on the
 * terminal while the sender on the other machine times out.
 *
 * A permission Deno would ask for is asked for once, now, when there is a terminal to answer on;
 * anything not granted is one error naming the flag that grants it.
 *
 * @module
 */

import { UsageError } from "./errors.ts";

/** The `deno run` flag that grants `permission`. */
export function permissionFlag(permission: Deno.PermissionDescriptor): string {
  switch (permission.name) {
    case "env":
      return permission.variable ? `--allow-env=${permission.variable}` : "--allow-env";
    case "read":
    case "write":
      return `--allow-${permission.name}` +
        (permission.path === undefined ? "" : `=${String(permission.path)}`);
    default:
      return `--allow-${permission.name}`;
  }
}

/** Whether `permission` is granted; asks once on a terminal if Deno would ask anyway. */
export function granted(permission: Deno.PermissionDescriptor): boolean {
  let state = Deno.permissions.querySync(permission).state;
  if (state === "prompt" && Deno.stdin.isTerminal()) {
    state = Deno.permissions.requestSync(permission).state;
  }
  return state === "granted";
}

/** Throws a UsageError naming every flag still needed for `needs` (what each is for). */
export function requirePermissions(
  needs: { permission: Deno.PermissionDescriptor; for: string }[],
): void {
  const missing = needs.filter((need) => !granted(need.permission));
  if (missing.length === 0) return;
  const flags = missing.map((need) => permissionFlag(need.permission)).join(" ");
  const why = missing.map((need) => need.for).join(", ");
  throw new UsageError(`deno needs ${flags} for this (${why}): add it to the deno run command`);
}

/**
 * Why the environment variable `name` may look unset: it is unreadable without its flag.
 * Undefined when it is readable (then unset means unset).
 */
export function unreadableEnv(name: string): string | undefined {
  const state = Deno.permissions.querySync({ name: "env", variable: name }).state;
  return state === "granted" ? undefined : `${name} cannot be read without --allow-env=${name}`;
}
