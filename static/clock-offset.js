// How far this browser's clock is from the server's, estimated as NTP does, so that latency
// (receipt − the event's `ts`, two clocks) holds when the page runs on another machine, as in
// a classroom. One estimate per page, shared by every panel and lane that shows a latency.
//
// A round: ROUND_TRIPS requests to GET /api/time, one after another. Each is sent at t0 on
// this page's clock (nowMicros, the clock receipts are read on) and answered at t1 = t0 + its
// round trip (timed on performance.now()); the server read its clock at some moment between. If the request and the answer took equal
// times, that moment is the midpoint, so offset = server time − (t0 + t1) / 2; whatever the
// split, the truth is within ± (t1 − t0) / 2 of it. The round trip with the least time is kept
// (the least room for queuing on the way). A round runs at load and every ROUND_EVERY_MS after;
// the estimate in use is the most certain among the last KEEP_ROUNDS rounds, so a round spoiled
// by a busy network does not replace a better recent one. As NTP does, an older round's
// uncertainty grows with its age at DRIFT (two clocks' rates differ), and a new round that
// contradicts an older one (their ± ranges do not meet: a clock was stepped) drops it.
//
// The page's clock ticks in steps (engines coarsen performance.now() on purpose, against
// timing attacks), so each of t0 and t1 may read up to one step early: the uncertainty adds one
// step (RESOLUTION, the smallest step seen at load) to the half round trip.
//
// A corrected latency = receipt + offset − ts, uncertain by ± the offset's uncertainty.

import { nowMicros } from '/static/clients/common.js';

const ROUND_TRIPS = 8;
const ROUND_EVERY_MS = 60_000;
const KEEP_ROUNDS = 5;
/** NTP's assumed frequency tolerance (RFC 5905's PHI): 15 µs per second of age. */
const DRIFT = 15e-6;

/** Each round's best sample: { offsetMicros, uncertaintyMicros, at (performance.now()) }. */
const rounds = [];
let current = null;
let lastError = null;
const listeners = new Set();
const waiting = [];

/**
 * The estimate in use, or null before the first round ends: { offsetMicros (server − this
 * page), uncertaintyMicros (± half the round trip + one step of the page's clock), at
 * (performance.now() of its sample), error (the last round's failure, if it failed) }.
 */
export function clockOffset() {
  return current;
}

/** Calls `fn(estimate)` with every new estimate (now, if there is one already). */
export function onClockOffset(fn) {
  listeners.add(fn);
  if (current) fn(current);
  return () => listeners.delete(fn);
}

/**
 * Calls `fn(estimate)` once there is an estimate: at once if there is one, else when the first
 * round ends. Latencies received before are corrected then, in the order they came.
 */
export function withClockOffset(fn) {
  if (current) fn(current);
  else waiting.push(fn);
}

/** A time of this page's clock (µs) on the server's, by the current estimate (none: as is). */
export function serverMicros(localMicros) {
  return localMicros + (current?.offsetMicros ?? 0);
}

/** Corrected latency in ms of an event stamped `ts` (server µs) and received at `receivedAt`. */
export function latencyMs(receivedAtMicros, ts, estimate) {
  return (receivedAtMicros + estimate.offsetMicros - ts) / 1000;
}

/**
 * Shows every estimate in two elements, as a reader sees it: the offset in ms, signed
 * ("+7000.2", "−3.1"), and its uncertainty ("0.3", the ± in ms). Either may be null.
 */
export function showClockOffset(offsetEl, uncertaintyEl) {
  const set = (el, text) => {
    if (el && el.textContent !== text) el.textContent = text;
  };
  return onClockOffset((estimate) => {
    if (estimate.uncertaintyMicros === null) {
      set(offsetEl, `not measured (${estimate.error}): latencies assume one clock`);
      set(uncertaintyEl, '–');
      return;
    }
    const ms = estimate.offsetMicros / 1000;
    set(offsetEl, `${ms >= 0 ? '+' : '−'}${Math.abs(ms).toFixed(1)}`);
    set(uncertaintyEl, (estimate.uncertaintyMicros / 1000).toFixed(1));
  });
}

/** The smallest step of performance.now() seen in a few ms of reading it (µs). */
function clockStep() {
  let step = Infinity;
  let last = performance.now();
  const until = last + 5;
  for (let now = last; now < until; now = performance.now()) {
    if (now > last) step = Math.min(step, now - last);
    last = now;
  }
  return Number.isFinite(step) ? step * 1000 : 1000;
}
const RESOLUTION = clockStep();

async function sample() {
  // t0 on the receipts' clock; the round trip on the monotonic clock under it, which
  // nowMicros() may re-anchor (by under a millisecond) between t0 and t1.
  const t0 = nowMicros();
  const start = performance.now();
  const response = await fetch('/api/time', { cache: 'no-store' });
  const body = await response.json();
  const roundTrip = (performance.now() - start) * 1000;
  if (!response.ok || !Number.isFinite(body?.ts)) {
    throw new Error(`GET /api/time answered ${response.status}`);
  }
  const uncertaintyMicros = roundTrip / 2 + RESOLUTION;
  return { offsetMicros: body.ts - (t0 + roundTrip / 2), uncertaintyMicros };
}

/** A round's uncertainty now: its own, grown by DRIFT over its age. */
function aged(r, now) {
  return { ...r, uncertaintyMicros: r.uncertaintyMicros + DRIFT * (now - r.at) * 1000 };
}

async function round() {
  let best = null;
  try {
    for (let i = 0; i < ROUND_TRIPS; i += 1) {
      const s = await sample();
      if (!best || s.uncertaintyMicros < best.uncertaintyMicros) best = s;
    }
    lastError = null;
  } catch (err) {
    lastError = err.message;
  }
  const now = performance.now();
  if (best) {
    const fresh = { ...best, at: now };
    const agrees = (r) => {
      const then = aged(r, now);
      const apart = Math.abs(then.offsetMicros - fresh.offsetMicros);
      return apart <= then.uncertaintyMicros + fresh.uncertaintyMicros;
    };
    const consistent = rounds.filter(agrees);
    rounds.splice(0, rounds.length, ...consistent, fresh);
    while (rounds.length > KEEP_ROUNDS) rounds.shift();
  }
  const kept = rounds
    .map((r) => aged(r, now))
    .reduce((a, b) => (a && a.uncertaintyMicros <= b.uncertaintyMicros ? a : b), null);
  // With no sample at all the latencies stay uncorrected (one clock assumed) and say so.
  current = kept
    ? { ...kept, error: lastError }
    : { offsetMicros: 0, uncertaintyMicros: null, at: performance.now(), error: lastError };
  for (const fn of waiting.splice(0)) fn(current);
  for (const fn of listeners) fn(current);
}

round();
setInterval(round, ROUND_EVERY_MS);
