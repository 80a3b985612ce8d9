// Verbatim from the reference, section "Node.js Usage". The key comes from
// SOPHRA_API_KEY and the base URL from SOPHRA_BASE_URL (the SDK's Node default).
const sophra = require('./sophra-sdk');

// Initialize once at app startup
sophra.init({ apiKey: process.env.SOPHRA_API_KEY });

// Report vitals from your agent's main loop
await sophra.reportVitals({
  agentId: 'my-agent',
  agentName: 'My Production Agent',
  metrics: {
    tokenConsumption: 2400,   // tokens used in current window
    tokenLimit: 100000,       // your model's context window
    hallucinationRate: 0.02,  // 0.0–1.0
    loopCount: 3,             // recursive calls / re-tries
    conflictCount: 0          // directive conflicts detected
  }
});
