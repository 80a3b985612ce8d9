// Setup as in the reference's "Node.js Usage" section.
const sophra = require('./sophra-sdk');
sophra.init({ apiKey: process.env.SOPHRA_API_KEY });

// Verbatim from the reference, section "Best Practices" > "Non-blocking monitoring".
// ✅ Don't let monitoring block your agent's main work
async function runAgentStep(state) {
  // Fire-and-forget — monitoring never delays execution
  sophra.reportVitals({
    agentId: 'my-agent',
    metrics: state.metrics
  }).catch(console.warn);

  // Continue agent work immediately
  return await processNextStep(state);
}

// Test driver (not in the reference): the agent's own work, which records when it ran,
// and one step with real metrics.
async function processNextStep(state) {
  globalThis.snippetResult = { step: state.step + 1, processedAtMs: require('perf_hooks').performance.now() };
  return globalThis.snippetResult;
}
await runAgentStep({ step: 1, metrics: { tokenConsumption: 5000, tokenLimit: 8000, hallucinationRate: 0.01, loopCount: 2, conflictCount: 0 } });
