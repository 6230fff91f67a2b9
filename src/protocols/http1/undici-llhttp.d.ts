// Types for the parts of undici's llhttp build that typhoon loads.
declare module "undici/lib/llhttp/llhttp-wasm.js" {
  const wasm: Uint8Array<ArrayBuffer>;
  export default wasm;
}
declare module "undici/lib/llhttp/llhttp_simd-wasm.js" {
  const wasm: Uint8Array<ArrayBuffer>;
  export default wasm;
}
