// Seed 001's budget check on the unmodified npm `langfuse` 3.x SDK: log generations for a user, then read the
// user's spend back with fetchTraces({userId, fromTimestamp}) and sum totalCost. Prints what it read.
const { Langfuse } = require("langfuse");

async function main() {
  const userId = process.argv[2];
  const langfuse = new Langfuse({
    publicKey: process.env.LANGFUSE_PUBLIC_KEY,
    secretKey: process.env.LANGFUSE_SECRET_KEY,
    baseUrl: process.env.LANGFUSE_BASEURL,
  });
  const fromTimestamp = new Date(Date.now() - 60 * 60 * 1000);
  for (let i = 0; i < 3; i++) {
    const trace = langfuse.trace({ name: "chat", userId });
    trace.generation({ name: "llm", model: "gpt-4o-mini", usage: { input: 1000, output: 500 } }).end();
  }
  await langfuse.flushAsync();
  const { data, meta } = await langfuse.fetchTraces({ userId, fromTimestamp });
  const spent = data.reduce((sum, trace) => sum + trace.totalCost, 0);
  const { data: observations } = await langfuse.fetchObservations({ userId, type: "GENERATION" });
  await langfuse.shutdownAsync();
  process.stdout.write(JSON.stringify({
    meta, spent, costs: data.map((t) => t.totalCost), users: data.map((t) => t.userId),
    observationCosts: observations.map((o) => o.calculatedTotalCost),
  }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
