// The live-update stream, /api/events. EventSource reconnects by itself
// after a network error; it gives up on an HTTP error (a 401 after
// signing out, a 503 when the broker has too many streams), and then this
// module asks the caller what to do and retries with a backoff.

const MAX_BACKOFF_MS = 30000;

// Events opens the stream and calls handlers:
//   open()          the stream is (re)open: reload what is on screen
//   down()          the stream is not open
//   card(card)      one machine's card changed
//   gone(id)        a machine is no longer visible
//   list(kind)      "alerts", "queue" or "audit" changed
//   signedOut()     the broker ended this sign-in
//   failed()        the stream was refused; returns a promise of whether
//                   to retry (false after the caller found it signed out)
export class Events {
  constructor(handlers) {
    this.handlers = handlers;
    this.source = null;
    this.backoff = 1000;
    this.timer = 0;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.source = null;
  }

  connect() {
    if (this.stopped) return;
    const es = new EventSource('/api/events');
    this.source = es;
    const hd = this.handlers;
    es.onopen = () => {
      this.backoff = 1000;
      hd.open();
    };
    es.onerror = () => {
      hd.down();
      if (es.readyState === EventSource.CLOSED) this.refused(es);
    };
    on(es, 'card', (d) => hd.card(d));
    on(es, 'gone', (d) => hd.gone(d.id));
    for (const kind of ['alerts', 'queue', 'audit']) on(es, kind, () => hd.list(kind));
    es.addEventListener('signed-out', () => {
      this.stop();
      hd.signedOut();
    });
  }

  // refused handles a stream the browser will not reopen by itself.
  async refused(es) {
    if (this.source !== es || this.stopped) return;
    this.source = null;
    const retry = await this.handlers.failed();
    if (!retry || this.stopped) return;
    this.timer = setTimeout(() => this.connect(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
  }
}

// on listens for a named event with JSON data; malformed data is dropped.
function on(es, name, fn) {
  es.addEventListener(name, (e) => {
    let data;
    try {
      data = JSON.parse(e.data);
    } catch {
      return;
    }
    fn(data);
  });
}
