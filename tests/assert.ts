/**
 * The assertions the tests use, on node:assert/strict (JSR's @std/assert is out of reach here).
 *
 * @module
 */

import assert from "node:assert/strict";

export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  assert.deepStrictEqual(actual, expected, message);
}

export function assertNotEquals<T>(actual: T, expected: T, message?: string): void {
  assert.notDeepStrictEqual(actual, expected, message);
}

export function assert_(condition: unknown, message?: string): asserts condition {
  assert.ok(condition, message);
}
export { assert_ as assert };

export function assertMatch(text: string, pattern: RegExp, message?: string): void {
  assert.match(text, pattern, message);
}

export function assertNotMatch(text: string, pattern: RegExp, message?: string): void {
  assert.doesNotMatch(text, pattern, message);
}

// deno-lint-ignore no-explicit-any
type ErrorClass = new (...args: any[]) => Error;

export function assertThrows(fn: () => unknown, errorClass?: ErrorClass, includes?: string): Error {
  try {
    fn();
  } catch (err) {
    checkError(err, errorClass, includes);
    return err as Error;
  }
  throw new assert.AssertionError({ message: "Expected function to throw" });
}

export async function assertRejects(
  fn: () => Promise<unknown>,
  errorClass?: ErrorClass,
  includes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (err) {
    checkError(err, errorClass, includes);
    return err as Error;
  }
  throw new assert.AssertionError({ message: "Expected promise to reject" });
}

function checkError(err: unknown, errorClass?: ErrorClass, includes?: string): void {
  if (errorClass && !(err instanceof errorClass)) {
    throw new assert.AssertionError({
      message: `Expected ${errorClass.name}, got ${(err as Error)?.name}: ${
        (err as Error)?.message
      }`,
    });
  }
  if (includes && !(err as Error).message.includes(includes)) {
    throw new assert.AssertionError({
      message: `Expected message to include "${includes}", got "${(err as Error).message}"`,
    });
  }
}
