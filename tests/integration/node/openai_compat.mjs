// Drives tokenway with the official OpenAI SDK: one streaming and one non-streaming chat
// completion. Prints one JSON line with what it saw; the Python test checks it.
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 30000 });

const plain = await client.chat.completions.create({
  model,
  max_tokens: 12,
  messages: [{ role: "user", content: "Say something short." }],
});

let streamed = "";
let chunks = 0;
let usage = null;
const stream = await client.chat.completions.create({
  model,
  max_tokens: 12,
  stream: true,
  stream_options: { include_usage: true },
  messages: [{ role: "user", content: "Say something short." }],
});
for await (const chunk of stream) {
  chunks += 1;
  if (chunk.usage) usage = chunk.usage;
  for (const choice of chunk.choices) streamed += choice.delta?.content ?? "";
}

let notFound = null;
try {
  await client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] });
} catch (e) {
  notFound = { status: e.status, code: e.code, type: e.type };
}

console.log(JSON.stringify({
  plain: { content: plain.choices[0].message.content, usage: plain.usage, finish: plain.choices[0].finish_reason },
  stream: { content: streamed, chunks, usage },
  notFound,
}));
