// Timing hooks for the session benchmark: window.rmTiming = {start,
// firstByte}, both performance.now() values. start is the Connect (or
// Watch) click, or the page's opening when the session page was loaded
// directly; firstByte is the first output frame, null until then.

// clicked says rmTiming was just set by a click whose session page is
// about to open.
let clicked = false;

// noteConnectClick starts the clock at the click. It replaces rmTiming at
// once, so nothing polling it can read the previous session's firstByte
// while the page changes.
export function noteConnectClick() {
  window.rmTiming = { start: performance.now(), firstByte: null };
  clicked = true;
}

// startTiming is called as a session page opens.
export function startTiming() {
  if (!clicked || !window.rmTiming) window.rmTiming = { start: performance.now(), firstByte: null };
  clicked = false;
}

// firstByte records the first output, once.
export function firstByte() {
  if (window.rmTiming && window.rmTiming.firstByte === null) window.rmTiming.firstByte = performance.now();
}
