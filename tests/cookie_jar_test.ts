/** The responder's cookies (`session/cookie.ts`): one HMAC per source and secret. */
import assert from "node:assert/strict";
import { COOKIE_SECRET_LIFETIME_MS } from "../src/constants.ts";
import { CookieJar } from "../src/session/cookie.ts";
import { FakeClock } from "./_session_helpers.ts";

const A = { hostname: "198.18.0.1", port: 4000 };
const B = { hostname: "198.18.0.1", port: 4001 };

Deno.test("CookieJar.cookieFor() answers a burst from one source with the first reply's HMAC", async () => {
  const jar = new CookieJar(new FakeClock().now);
  // Asked again before the first HMAC is done: the same computation, not a second one.
  const first = jar.cookieFor(A);
  assert.equal(jar.cookieFor(A), first);
  const cookie = await first;
  assert.equal(cookie.length, 16);
  assert.deepEqual(await jar.cookieFor(A), cookie);
  assert.notDeepEqual(await jar.cookieFor(B), cookie);
});

Deno.test("CookieJar.cookieFor() gives a new cookie once the secret rotates", async () => {
  const clock = new FakeClock();
  const jar = new CookieJar(clock.now);
  const before = await jar.cookieFor(A);
  clock.advance(COOKIE_SECRET_LIFETIME_MS);
  const after = await jar.cookieFor(A);
  assert.notDeepEqual(after, before);
  assert.deepEqual(await jar.cookieFor(A), after);
});
