/**
 * typhoon/core: bytes, headers, errors, time and the Transport contract.
 * Nothing here does I/O.
 *
 * @module
 */
export * from "./bytes";
export * from "./clock";
export * from "./errors";
export * from "./headers";
export * from "./log";
export * from "./transport";
