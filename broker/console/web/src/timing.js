// Timing hooks for the session benchmark: window.rmTiming = {start,
// firstByte}, both performance.now() values. start is the Connect (or
// Watch) click, or the page's opening when the session page was loaded
// directly; firstByte is the first output frame, null until then.

let clicked = null;

// noteConnectClick records the click that opens a session page.
export function noteConnectClick() {
  clicked = performance.now();
}

// startTiming sets window.rmTiming for a session page being opened.
export function startTiming() {
  const start = clicked !== null ? clicked : performance.now();
  clicked = null;
  window.rmTiming = { start, firstByte: null };
}

// firstByte records the first output, once.
export function firstByte() {
  if (window.rmTiming && window.rmTiming.firstByte === null) window.rmTiming.firstByte = performance.now();
}
