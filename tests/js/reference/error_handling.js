// Setup as in the reference's "Node.js Usage" section.
const sophra = require('./sophra-sdk');
sophra.init({ apiKey: process.env.SOPHRA_API_KEY });

// Verbatim from the reference, section "Advanced SDK Usage" > "Error Handling", except
// that its `{ ... }` placeholders are replaced by real payloads (one agent each, so the
// two reports stay clear of the per-agent rate limit).
// SDK uses exponential backoff automatically
// But you can also handle errors manually:
try {
  await sophra.reportVitals({ agentId: 'error-handling-awaited', metrics: { tokenConsumption: 1200, hallucinationRate: 0.02, loopCount: 4, conflictCount: 1 } });
} catch (err) {
  // Don't let monitoring failures block your agent
  console.warn('[sophra] Vitals report failed:', err.message);
}

// Or use fire-and-forget (no await)
sophra.reportVitals({ agentId: 'error-handling-fire-and-forget', metrics: { tokenConsumption: 90000, hallucinationRate: 0.06, loopCount: 7, conflictCount: 2 } }).catch(console.warn);
