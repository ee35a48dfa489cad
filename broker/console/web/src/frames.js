// Live frames: the byte-stream protocol on the "terminal" data channel
// (peer/wire/channel.go). A frame is one type byte, a 4-byte big-endian
// payload length and the payload. Data-channel message boundaries mean
// nothing: a frame may span messages and a message may hold many frames.

export const HEADER = 0x68; // 'h' technician → agent: the request (JSON)
export const INPUT = 0x69; // 'i' input bytes; an empty one means end of input
export const RESIZE = 0x72; // 'r' rows and columns, 2 + 2 bytes
export const OUTPUT = 0x6f; // 'o' agent → technician: terminal output
export const STDERR = 0x65; // 'e' stderr (exec channels; shown like output)
export const NOTICE = 0x6e; // 'n' a message for the technician (UTF-8)
export const EXIT = 0x78; // 'x' 4-byte exit status; the last frame
export const ERROR = 0x21; // '!' {"code","message"}; the last frame

// MAX_FRAME bounds a payload, as the agent does (wire.MaxFrame).
export const MAX_FRAME = 1 << 20;

// encode makes one frame. payload is a Uint8Array (or nothing).
export function encode(type, payload = new Uint8Array(0)) {
  const out = new Uint8Array(5 + payload.length);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, payload.length, false);
  out.set(payload, 5);
  return out;
}

// resize makes a resize frame.
export function resize(rows, cols) {
  const p = new Uint8Array(4);
  const v = new DataView(p.buffer);
  v.setUint16(0, rows, false);
  v.setUint16(2, cols, false);
  return encode(RESIZE, p);
}

// Reader reassembles frames from the messages of a byte stream.
export class Reader {
  constructor(max = MAX_FRAME) {
    this.max = max;
    this.buf = new Uint8Array(0); // bytes not yet part of a whole frame
  }

  // push adds the bytes of one message and returns the frames completed,
  // as {type, payload} with payload a Uint8Array the caller may keep. It
  // throws on a frame longer than max; the stream is then unusable.
  push(chunk) {
    let buf = chunk;
    if (this.buf.length) {
      buf = new Uint8Array(this.buf.length + chunk.length);
      buf.set(this.buf);
      buf.set(chunk, this.buf.length);
    }
    const frames = [];
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let off = 0;
    while (buf.length - off >= 5) {
      const n = view.getUint32(off + 1, false);
      if (n > this.max) throw new Error(`malformed live frame: ${n}-byte payload, limit ${this.max}`);
      if (buf.length - off - 5 < n) break;
      // A copy, so the frame does not pin the whole message.
      frames.push({ type: buf[off], payload: buf.slice(off + 5, off + 5 + n) });
      off += 5 + n;
    }
    this.buf = buf.slice(off);
    return frames;
  }
}
