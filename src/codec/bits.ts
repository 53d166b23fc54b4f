import { StrataError } from '../errors.js';

/*
 * MSB-first bit I/O. Bits fill each byte from its most significant bit down, so a canonical
 * Huffman code can be decoded by comparing a left-justified window against per-length limits,
 * and the byte-mode table is indexed by the next `k` bits read as a plain integer.
 */

/** Appends bit fields to a growing byte buffer. */
export class BitWriter {
  private buf: Uint8Array;
  private pos = 0;
  /** Pending bits, right-aligned; always fewer than 8 between calls. */
  private acc = 0;
  private count = 0;

  constructor(initialBytes = 256) {
    this.buf = new Uint8Array(Math.max(16, initialBytes));
  }

  /** Writes the low `n` bits of `value`, most significant first. `n` ≤ 24. */
  write(value: number, n: number): void {
    this.acc = ((this.acc << n) | (value & ((1 << n) - 1))) >>> 0;
    this.count += n;
    if (this.count >= 8) {
      if (this.pos + 4 > this.buf.length) this.grow(4);
      while (this.count >= 8) {
        this.count -= 8;
        this.buf[this.pos++] = this.acc >>> this.count;
      }
      this.acc &= (1 << this.count) - 1;
    }
  }

  /** Elias-gamma code of `value` ≥ 1: ⌊log2 v⌋ zero bits, then v in ⌊log2 v⌋+1 bits. */
  writeGamma(value: number): void {
    const bits = 32 - Math.clz32(value);
    if (bits > 1) this.write(0, bits - 1);
    if (bits > 24) {
      this.write(value >>> 24, bits - 24);
      this.write(value & 0xffffff, 24);
    } else this.write(value, bits);
  }

  writeBytes(bytes: Uint8Array): void {
    this.alignToByte();
    if (this.pos + bytes.length > this.buf.length) this.grow(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** Pads with zero bits to the next byte boundary. */
  alignToByte(): void {
    if (this.count > 0) this.write(0, 8 - this.count);
  }

  get bitLength(): number {
    return this.pos * 8 + this.count;
  }

  /** Aligns and returns the written bytes (a view; the writer must not be used afterwards). */
  finish(): Uint8Array {
    this.alignToByte();
    return this.buf.subarray(0, this.pos);
  }

  private grow(extra: number): void {
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + extra + 16));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }
}

/**
 * Reads bit fields from `input[start, end)`. Never reads a byte outside that range: past the end
 * it supplies zero bits and counts them, and `checkNotOverrun` turns any use of them into a coded
 * truncation error, so a short stream cannot decode into plausible-looking garbage.
 */
export class BitReader {
  /** Unconsumed bits are the low `count` bits of `buf` (older bits higher). */
  buf = 0;
  count = 0;
  pos: number;
  /** Zero bits supplied past the end of the input. */
  overrun = 0;

  constructor(
    readonly input: Uint8Array,
    start = 0,
    readonly end = input.length,
  ) {
    this.pos = start;
  }

  /** Ensures at least 25 bits are buffered (zeros past the end). */
  refill(): void {
    while (this.count <= 24) {
      if (this.pos < this.end) this.buf = (this.buf << 8) | this.input[this.pos++]!;
      else {
        this.buf <<= 8;
        this.overrun += 8;
      }
      this.count += 8;
    }
  }

  /** Returns the next `n` ≤ 24 bits without consuming them. */
  peek(n: number): number {
    if (this.count < n) this.refill();
    return (this.buf >>> (this.count - n)) & ((1 << n) - 1);
  }

  skip(n: number): void {
    this.count -= n;
  }

  read(n: number): number {
    const v = this.peek(n);
    this.count -= n;
    return v;
  }

  /** Reads an Elias-gamma value (see BitWriter.writeGamma) of at most `maxBits` ≤ 25 bits. */
  readGamma(maxBits = 25): number {
    let zeros = 0;
    while (this.read(1) === 0) {
      if (++zeros >= maxBits) throw new StrataError('STRATA_ERR_CODEC_CORRUPT', 'Elias-gamma value longer than allowed');
      this.checkNotOverrun();
    }
    return zeros === 0 ? 1 : (1 << zeros) | this.read(zeros);
  }

  /** Throws when any consumed bit lay past the end of the input. */
  checkNotOverrun(): void {
    if (this.overrun > this.count) throw new StrataError('STRATA_ERR_CODEC_TRUNCATED', 'bit stream ends early');
  }

  /**
   * Ends a byte-aligned section: the padding bits up to the byte boundary must be zero. Returns
   * the offset of the first byte after the section.
   */
  finishAligned(): number {
    this.checkNotOverrun();
    const pad = this.count & 7;
    if (pad && ((this.buf >>> (this.count - pad)) & ((1 << pad) - 1)) !== 0) throw new StrataError('STRATA_ERR_CODEC_CORRUPT', 'non-zero padding bits');
    this.count -= pad;
    const next = this.pos - (this.count >> 3) + (this.overrun >> 3);
    this.count = 0;
    this.buf = 0;
    this.overrun = 0;
    this.pos = next;
    return next;
  }
}
