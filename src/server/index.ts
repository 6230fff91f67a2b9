/**
 * typhoon/server: the drivers that run the engines over transports.
 *
 * @module
 */
export * from "./http-server";
export * from "./request";
export { defaultTransport } from "./default-transport";
export * from "./process";
export * from "./tcp-server";
export * from "./websocket-session";
