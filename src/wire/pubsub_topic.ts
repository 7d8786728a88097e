/**
 * The grammar of events topics and topic patterns (virtual port 1002). A
 * topic is 1–128 bytes of labels of `[a-z0-9_-]` separated by `.`. A
 * pattern is a topic (exact match), a topic followed by `.*` (every topic
 * strictly below it), or a lone `*` (every topic); also at most 128 bytes.
 * It is part of the bytes: `pubsub_frame.ts` refuses a frame that carries a
 * malformed one. What a pattern matches is the broker's
 * (`services/pubsub/topic.ts`).
 *
 * @module
 */
import { PUBSUB_MAX_TOPIC } from "../constants.ts";

const encoder = new TextEncoder();
const LABEL = /^[a-z0-9_-]+$/;
const TOPIC_EXPECTED = 'expected 1-128 bytes of [a-z0-9_-] labels separated by "."';
const PATTERN_EXPECTED = 'expected a topic, a topic followed by ".*", or "*"';

/** Quotes user input for an error message: JSON string syntax, long input cut. */
export function quoteInput(text: string): string {
  return JSON.stringify(text.length > 64 ? text.slice(0, 64) + "…" : text);
}

function labelsProblem(text: string): string | null {
  for (const label of text.split(".")) {
    if (label === "") return "it has an empty label";
    if (!LABEL.test(label)) {
      const bad = [...label].find((c) => !LABEL.test(c)) ?? label;
      return `${quoteInput(bad)} is not allowed in a label`;
    }
  }
  return null;
}

function lengthProblem(text: string): string | null {
  if (text.length === 0) return "it is empty";
  const n = encoder.encode(text).length;
  return n > PUBSUB_MAX_TOPIC ? `it is ${n} bytes long` : null;
}

/** Why `topic` is not a valid topic, or null when it is. */
export function topicProblem(topic: string): string | null {
  return lengthProblem(topic) ?? labelsProblem(topic);
}

/** Why `pattern` is not a valid topic pattern, or null when it is. */
export function patternProblem(pattern: string): string | null {
  const length = lengthProblem(pattern);
  if (length !== null) return length;
  if (pattern === "*") return null;
  const exact = pattern.endsWith(".*") ? pattern.slice(0, -2) : pattern;
  if (exact.split(".").includes("*")) return '"*" may only stand alone or as the last label';
  if (exact === "") return "it has an empty label";
  return labelsProblem(exact);
}

/** The sentence refusing `topic` for `why`. */
export function topicMessage(topic: string, why: string): string {
  return `Invalid topic ${quoteInput(topic)}: ${why}; ${TOPIC_EXPECTED}`;
}

/** The sentence refusing `pattern` for `why`. */
export function patternMessage(pattern: string, why: string): string {
  return `Invalid topic pattern ${quoteInput(pattern)}: ${why}; ${PATTERN_EXPECTED}`;
}

/**
 * Returns `topic` if it is a valid topic; throws `TypeError` quoting it otherwise.
 *
 * @example
 * ```ts
 * import { checkTopic } from "./pubsub_topic.ts";
 * checkTopic("swarm.status"); // "swarm.status"
 * ```
 */
export function checkTopic(topic: string): string {
  const why = typeof topic === "string" ? topicProblem(topic) : "it is not a string";
  if (why !== null) throw new TypeError(topicMessage(String(topic), why));
  return topic;
}

/**
 * Returns `pattern` if it is a valid topic pattern; throws `TypeError` quoting it otherwise.
 *
 * @example
 * ```ts
 * import { checkPattern } from "./pubsub_topic.ts";
 * checkPattern("swarm.*"); // "swarm.*"
 * ```
 */
export function checkPattern(pattern: string): string {
  const why = typeof pattern === "string" ? patternProblem(pattern) : "it is not a string";
  if (why !== null) throw new TypeError(patternMessage(String(pattern), why));
  return pattern;
}
