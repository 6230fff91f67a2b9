/**
 * typhoon/transports/memory: in-memory pipes and a virtual network, with
 * latency on an injected clock, split writes and resets, for fast and
 * deterministic tests.
 *
 * @module
 */
export {
  createPipe,
  flushMemory,
  MemoryConnection,
  MemoryNetworkError,
  type MemoryPipe,
  type MemoryPipeOptions,
  type SplitRule,
} from "./pipe";
export { MemoryTransport, type MemoryTransportOptions } from "./transport";
