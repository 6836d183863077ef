// Loads the smoke module built by scripts/wasm-smoke.sh and runs its exchange, passing this
// host's clocks as plain numbers: monotonic nanoseconds from performance.now() (milliseconds
// since this process started, a fraction included) and Unix milliseconds from Date.now().
//
//   node tests/wasm/run.mjs path/to/tokenflow_wasm_smoke.wasm
//
// Exits 0 when every step held; 1 when a step failed (its number and description are
// printed); 2 when the module trapped (a panic) or could not be loaded.
import { readFile } from "node:fs/promises";

const path = process.argv[2];
if (!path) {
  console.error("usage: node run.mjs MODULE.wasm");
  process.exit(2);
}

let exports;
try {
  // No imports: the core needs nothing from its host but the numbers it is given.
  const { instance } = await WebAssembly.instantiate(await readFile(path), {});
  exports = instance.exports;
} catch (error) {
  console.error(`wasm smoke: cannot load ${path}: ${error}`);
  process.exit(2);
}

// A panic in the module must reach this host as a trap, or a failing step could go unseen.
try {
  exports.panic_on_purpose();
  console.error("wasm smoke: a panic in the module did not trap");
  process.exit(2);
} catch (error) {
  if (!(error instanceof WebAssembly.RuntimeError)) {
    console.error(`wasm smoke: a panic raised ${error}, not a trap`);
    process.exit(2);
  }
  console.log(`wasm smoke: a panic in the module traps (${error.message})`);
}

const nowNanos = BigInt(Math.round(performance.now() * 1e6));
const wallMillis = BigInt(Date.now());
let step;
try {
  step = exports.run_exchange(nowNanos, wallMillis);
} catch (error) {
  console.error(`wasm smoke: the exchange trapped: ${error}`);
  process.exit(2);
}
if (step !== 0) {
  const bytes = new Uint8Array(
    exports.memory.buffer,
    exports.message_ptr(),
    exports.message_len(),
  );
  console.error(`wasm smoke: step ${step} failed: ${new TextDecoder().decode(bytes)}`);
  process.exit(1);
}
console.log(
  "wasm smoke: login, token request, response, TokensUpdated, AccessReady, the bearer, " +
    "token_info and a refresh at the proactive deadline all ran in wasm32-unknown-unknown " +
    `(host clock ${nowNanos} ns, wall ${wallMillis} ms)`,
);
