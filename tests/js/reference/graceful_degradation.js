// Setup as in the reference's "Node.js Usage" section.
const sophra = require('./sophra-sdk');
sophra.init({ apiKey: process.env.SOPHRA_API_KEY });

// Verbatim from the reference, section "Best Practices" > "Graceful degradation".
// ✅ Agent should keep running even if Sophra is unreachable
async function safeReport(metrics) {
  try {
    await sophra.reportVitals(metrics);
  } catch (e) {
    // Log locally but don't throw — monitoring is non-critical
    console.warn('[sophra] Report skipped:', e.message);
  }
}

// Test driver (not in the reference): one report, then the agent carries on.
await safeReport({ agentId: 'my-agent', agentName: 'Degrades Gracefully', metrics: { tokenConsumption: 700, hallucinationRate: 0.2, loopCount: 0, conflictCount: 0 }, metadata: { run: 'nightly' } });
globalThis.snippetResult = { agentKeptRunning: true };
