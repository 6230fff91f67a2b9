/**
 * typhoon/client: clients over the transports. Tornado's `TCPClient`, with
 * Happy Eyeballs for dual-stack names.
 *
 * @module
 */
export {
  defaultResolver,
  INITIAL_CONNECT_TIMEOUT,
  TCPClient,
  type ResolvedAddress,
  type Resolver,
  type TCPClientOptions,
  type TCPConnectOptions,
} from "./tcp-client";
