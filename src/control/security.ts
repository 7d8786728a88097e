/**
 * The control API's request checks, done once: bearer token compared in
 * constant time, a loopback `Host` with the API's port, and no foreign
 * `Origin` (DNS rebinding, browsers).
 *
 * @module
 */
import { constantTimeEqual, utf8 } from "../bytes.ts";
import { PilotError } from "../errors.ts";

const LOOPBACK_NAMES = ["127.0.0.1", "localhost", "[::1]"];

/** Throws `unauthorized` unless `Host` names a loopback interface on `port`. */
export function checkHost(host: string | null, port: number): void {
  if (host === null || !LOOPBACK_NAMES.some((name) => host === `${name}:${port}`)) {
    throw new PilotError(
      "unauthorized",
      `Refused request with Host "${host ?? ""}": expected 127.0.0.1:${port}`,
      "the control API answers only on its own loopback address",
    );
  }
}

/** Throws `unauthorized` when an `Origin` other than the API's own is present. */
export function checkOrigin(origin: string | null, port: number): void {
  if (origin === null) return;
  if (!LOOPBACK_NAMES.some((name) => origin === `http://${name}:${port}`)) {
    throw new PilotError(
      "unauthorized",
      `Refused request from Origin "${origin}"`,
      "the control API does not serve web pages from other origins",
    );
  }
}

/** Throws `unauthorized` unless `Authorization: Bearer <token>` matches. */
export function checkToken(authorization: string | null, token: string): void {
  const given = authorization?.startsWith("Bearer ") ? authorization.slice(7) : "";
  if (!constantTimeEqual(utf8(given), utf8(token))) {
    throw new PilotError(
      "unauthorized",
      "Refused request without the control token",
      "use the pilot CLI, or send the token from the home's control.json as a Bearer token",
    );
  }
}
