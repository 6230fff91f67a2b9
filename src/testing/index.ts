/**
 * typhoon/testing: what typhoon's own tests use, for users too — a client
 * that talks to a server over memory pipes.
 *
 * @module
 */
export { TestClient, TestResponse, type TestClientOptions, type TestRequestInit } from "./client";
