import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { isDiskFull } from '../archive/io.js';
import { ERROR_CATALOG, StrataError } from '../errors.js';
import type { ErrorCode } from '../errors.js';

/** The body of every error answer. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; details: Record<string, unknown> | null };
}

export function errorBody(code: ErrorCode, message: string, details?: Readonly<Record<string, unknown>> | null): ErrorBody {
  return { error: { code, message, details: details ? { ...details } : null } };
}

/** The message without its `CODE: ` prefix: the code travels in its own field. */
function bareMessage(err: StrataError): string {
  const prefix = `${err.code}: `;
  return err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
}

interface ValidationIssue {
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

function describeValidation(err: FastifyError): { message: string; issues: Array<{ path: string; message: string }> } {
  const context = err.validationContext ?? 'request';
  const issues = ((err.validation ?? []) as ValidationIssue[]).map((issue) => {
    const extra = issue.params?.additionalProperty ? ` '${String(issue.params.additionalProperty)}'` : issue.params?.allowedValues ? ` (${(issue.params.allowedValues as unknown[]).join(', ')})` : '';
    return { path: `${context}${issue.instancePath ?? ''}`, message: `${issue.message ?? 'is invalid'}${extra}` };
  });
  // anyOf failures report every branch and "must match a schema in anyOf" last. The branch the
  // client meant is the one that got furthest into the body, so the deepest issue is named
  // ("body/messages/0/content must be string", not "body must have required property 'role'").
  const specific = issues.filter((i) => !/anyOf/.test(i.message));
  const depth = (i: { path: string }) => i.path.split('/').length;
  const first = specific.reduce<(typeof issues)[number] | undefined>((best, i) => (best === undefined || depth(i) > depth(best) ? i : best), undefined) ?? issues[0];
  return { message: first ? `${first.path} ${first.message}` : err.message, issues };
}

/**
 * Maps every error to a status and `{"error": {code, message, details}}`: StrataError by its
 * catalog status; fastify's own errors (validation, malformed JSON, body too large, wrong
 * content type) to the matching Strata code; anything else is a 500 whose cause is logged.
 */
export function toErrorReply(err: unknown): { status: number; body: ErrorBody; unexpected: boolean } {
  if (err instanceof StrataError) {
    return { status: ERROR_CATALOG[err.code][0], body: errorBody(err.code, bareMessage(err), err.details), unexpected: false };
  }
  // A write this code did not map itself (e.g. a directory created on the way): still a full disk.
  if (isDiskFull(err)) {
    return { status: 503, body: errorBody('STRATA_ERR_STORAGE_FULL', `the disk is full (${(err as Error).message}); nothing of this write was committed`), unexpected: false };
  }
  const fe = err as FastifyError;
  if (fe && Array.isArray(fe.validation)) {
    const { message, issues } = describeValidation(fe);
    return { status: 400, body: errorBody('STRATA_ERR_VALIDATION', message, { issues }), unexpected: false };
  }
  switch (fe?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, body: errorBody('STRATA_ERR_PAYLOAD_TOO_LARGE', 'request body exceeds the size limit'), unexpected: false };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 400, body: errorBody('STRATA_ERR_INPUT_FORMAT', fe.message), unexpected: false };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, body: errorBody('STRATA_ERR_INPUT_FORMAT', 'empty JSON body'), unexpected: false };
    case 'FST_ERR_BAD_URL':
      return { status: 400, body: errorBody('STRATA_ERR_VALIDATION', 'the URL is not valid percent-encoded UTF-8'), unexpected: false };
    case 'FST_ERR_MAX_PARAM_LENGTH':
      // Every path parameter is an id, at most MAX_ID_LENGTH characters: far below fastify's limit.
      return { status: 400, body: errorBody('STRATA_ERR_INVALID_ID', 'a path parameter is longer than the router accepts; ids are at most 256 characters'), unexpected: false };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { status: 400, body: errorBody('STRATA_ERR_INPUT_FORMAT', `malformed JSON body: ${fe.message}`), unexpected: false };
  }
  if (err instanceof SyntaxError || (fe?.statusCode === 400 && /JSON/i.test(fe.message ?? ''))) {
    return { status: 400, body: errorBody('STRATA_ERR_INPUT_FORMAT', `malformed JSON body: ${(err as Error).message}`), unexpected: false };
  }
  if (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { status: fe.statusCode, body: errorBody('STRATA_ERR_VALIDATION', fe.message), unexpected: false };
  }
  return { status: 500, body: errorBody('STRATA_ERR_INTERNAL', 'internal error'), unexpected: true };
}

export function errorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body, unexpected } = toErrorReply(err);
  if (unexpected) request.log.error({ err }, 'unexpected error');
  else if (status >= 500) request.log.error({ code: body.error.code, err }, body.error.message);
  // 503s are outages that end by themselves (Redis or the disk back, a recovery done): say when to retry.
  if (status === 503) void reply.header('retry-after', '1');
  void reply.status(status).send(body);
}
