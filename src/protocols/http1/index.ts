/**
 * typhoon/http1: the sans-I/O HTTP/1.1 engine on llhttp.
 *
 * @module
 */
export * from "./server-connection";
export * from "./client-connection";
export { httpDate } from "./date";
export { STATUS_REASONS, reasonPhrase } from "./status";
export { assertHeader, isValidHeaderName, isValidHeaderValue, nameIs } from "./serialize";
export { llhttpUsesSimd } from "./llhttp";
