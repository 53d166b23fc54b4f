export { StrataError, ERROR_CATALOG, isStrataError } from './errors.js';
export type { ErrorCode } from './errors.js';
export { ROLES, DEFAULT_TENANT, systemClock } from './types.js';
export type { Role, Metadata, SessionRef, Turn, ArchivedTurn, SessionLock, Clock } from './types.js';
export { validateId, toSessionRef } from './ids.js';
export { CODEC_IDS, encodeFrame, decodeFrame, getCodec, listCodecs, registerCodec } from './codec/codec.js';
export type { Codec, DecodeOptions } from './codec/codec.js';
export { rawCodec, deflateCodec, gzipCodec, brotliCodec } from './codec/zlib.js';
