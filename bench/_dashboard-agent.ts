/** The agent of `npm run bench -- dashboard`, in its own process: prints `{"url": ...}` once listening. */
import { createAgent, hashToken } from '../lib/agent/index.js';

const [dataDir, token] = process.argv.slice(2);
const agent = await createAgent({
  dataDir: dataDir!,
  listen: { host: '127.0.0.1', port: 0 },
  auth: { tokens: [{ name: 'bench', sha256: hashToken(token!), scopes: ['read'] }] },
});
const { url } = await agent.listen();
process.stdout.write(`${JSON.stringify({ url })}\n`);
process.on('SIGTERM', () => void agent.close().then(() => process.exit(0)));
