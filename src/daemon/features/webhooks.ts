/**
 * `pilot webhook list`, `webhook add` and `webhook remove`: the webhooks of
 * a running node (`webhooks` in config.json), changed in the home's
 * config.json and in the running dispatcher together, so a change holds at
 * once and after a restart.
 *
 * @module
 */
import { PilotError } from "../../errors.ts";
import { saveConfigWebhook } from "../config.ts";
import type { NodeContext } from "../context.ts";
import {
  MAX_WEBHOOKS,
  parseWebhookEvents,
  parseWebhookSecret,
  parseWebhookUrl,
  type WebhookDispatcher,
  type WebhookState,
} from "../webhooks.ts";

/** What `webhook add` or `webhook remove` did. */
export interface WebhookChange {
  /** The webhook's URL (canonical). */
  url: string;
  /** Its events after an add; the ones it had before a remove (empty when there was none). */
  events: string[];
  /** Whether requests are signed (after an add; before a remove). */
  secret: boolean;
  /** Whether the running list or config.json changed. */
  changed: boolean;
}

/** The webhooks of a running node. */
export class WebhooksFeature {
  #ctx: NodeContext;
  #home: string;
  #dispatcher: WebhookDispatcher;
  /** Changes one after another: each reads and writes config.json whole. */
  #queue: Promise<unknown> = Promise.resolve();

  /** Works over the node's live configuration, its home's config.json and its dispatcher. */
  constructor(ctx: NodeContext, home: string, dispatcher: WebhookDispatcher) {
    this.#ctx = ctx;
    this.#home = home;
    this.#dispatcher = dispatcher;
  }

  /** Whether webhook URLs may be off this machine. */
  get allowRemote(): boolean {
    return this.#ctx.config.allowRemoteWebhooks;
  }

  /** `pilot webhook list`: every webhook with its delivery counters. */
  list(): WebhookState[] {
    return this.#dispatcher.list();
  }

  /** `pilot webhook add URL --event E… [--secret S]`; the same webhook again answers changed: false. */
  add(urlText: string, eventsGiven: unknown, secretGiven: unknown): Promise<WebhookChange> {
    const where = "webhook add";
    const url = parseWebhookUrl(urlText, where, this.allowRemote);
    const events = parseWebhookEvents(eventsGiven, where);
    const secret = parseWebhookSecret(secretGiven, where);
    return this.#serial(async () => {
      const hooks = this.#ctx.config.webhooks;
      const at = hooks.findIndex((h) => h.url === url);
      if (at < 0 && hooks.length >= MAX_WEBHOOKS) {
        throw new PilotError(
          "too_large",
          `Cannot add "${url}": the node keeps at most ${MAX_WEBHOOKS} webhooks`,
          "remove some with `pilot webhook remove URL`",
        );
      }
      const spec = { url, events, secret };
      const before = at < 0 ? undefined : hooks[at];
      const running = before === undefined ||
        JSON.stringify(before) !== JSON.stringify(spec);
      // config.json first: when it is refused, the running list is left as it was.
      const written = await saveConfigWebhook(this.#home, url, spec);
      if (at < 0) hooks.push(spec);
      else hooks[at] = spec;
      this.#dispatcher.set(spec);
      return { url, events, secret: secret !== null, changed: running || written };
    });
  }

  /** `pilot webhook remove URL`; an unknown URL answers changed: false. */
  remove(urlText: string): Promise<WebhookChange> {
    // Any URL may be removed, a remote one on a node that no longer allows them too.
    const url = parseWebhookUrl(urlText, "webhook remove", true);
    return this.#serial(async () => {
      const hooks = this.#ctx.config.webhooks;
      const at = hooks.findIndex((h) => h.url === url);
      const before = at < 0 ? undefined : hooks[at];
      const written = await saveConfigWebhook(this.#home, url, null);
      if (at >= 0) hooks.splice(at, 1);
      this.#dispatcher.remove(url);
      return {
        url,
        events: before?.events ?? [],
        secret: (before?.secret ?? null) !== null,
        changed: before !== undefined || written,
      };
    });
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(work);
    this.#queue = next.catch(() => {});
    return next;
  }
}
