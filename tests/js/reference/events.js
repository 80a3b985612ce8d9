// Setup as in the reference's "Node.js Usage" section.
const sophra = require('./sophra-sdk');
sophra.init({ apiKey: process.env.SOPHRA_API_KEY });

// Verbatim from the reference, section "Advanced SDK Usage" > "Reporting Discrete Events".
// Report a conflict detected
await sophra.reportEvent({
  agentId: 'my-agent',
  type: 'directive_conflict',
  details: 'System prompt vs user instruction mismatch',
  metadata: { instruction_a: '...', instruction_b: '...' }
});

// Report an error
await sophra.reportEvent({
  agentId: 'my-agent',
  type: 'tool_error',
  details: 'Web search tool timed out',
  metadata: { tool: 'web_search', attempt: 3 }
});
