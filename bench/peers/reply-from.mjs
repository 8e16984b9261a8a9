// The undici-based peer: fastify with @fastify/reply-from, one process.
import Fastify from 'fastify';
import replyFrom from '@fastify/reply-from';

const [port, base] = process.argv.slice(2);
const app = Fastify({ logger: false });
await app.register(replyFrom, { base });
app.all('/*', (request, reply) => reply.from(request.url));
await app.listen({ port: Number(port), host: '127.0.0.1' });
