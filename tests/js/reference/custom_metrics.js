// Setup as in the reference's "Node.js Usage" section.
const sophra = require('./sophra-sdk');
sophra.init({ apiKey: process.env.SOPHRA_API_KEY });

// Verbatim from the reference, section "Advanced SDK Usage" > "Custom Metrics".
await sophra.reportVitals({
  agentId: 'my-agent',
  metrics: {
    // Standard Sophra fields
    tokenConsumption: 3200,
    hallucinationRate: 0.03,
    loopCount: 1,
    conflictCount: 0,
    // Your custom fields (stored in metadata)
    tasksCompleted: 12,
    apiCallsOut: 8,
    latencyP95Ms: 340,
    model: 'claude-3-5-sonnet'
  }
});
