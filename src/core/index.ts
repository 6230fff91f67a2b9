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
export {
  BoundedSemaphore,
  Condition,
  Event,
  Lock,
  Releaser,
  Semaphore,
  TimeoutError,
  type LockOptions,
  type Timeout,
} from "./locks";
export {
  LifoQueue,
  PriorityQueue,
  Queue,
  QueueEmpty,
  QueueFull,
  type PriorityQueueOptions,
  type QueueOptions,
  type QueueStore,
} from "./queues";
export * from "./iostream";
