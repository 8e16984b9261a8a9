/**
 * A real DNS server on loopback for tests: answers A queries from a table the test controls,
 * NXDOMAIN otherwise. It stands in for Swarm's embedded DNS (127.0.0.11) on a machine without
 * a Swarm, so both data planes resolve service names exactly as they would in a cluster.
 */
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

export class TestDnsServer {
  private readonly socket = dgram.createSocket('udp4');
  private readonly records = new Map<string, string[]>();
  queries = 0;

  /** Sets the A records of `name` (empty list: the name stops resolving). */
  set(name: string, addresses: string[]): void {
    if (addresses.length === 0) this.records.delete(name.toLowerCase());
    else this.records.set(name.toLowerCase(), addresses);
  }

  async start(): Promise<string> {
    this.socket.on('message', (message, remote) => this.answer(message, remote));
    await new Promise<void>((resolve) => this.socket.bind(0, '127.0.0.1', resolve));
    return `127.0.0.1:${this.socket.address().port}`;
  }

  private answer(message: Buffer, remote: dgram.RemoteInfo): void {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return;
    }
    this.queries++;
    const question = query.questions?.[0];
    const addresses = question === undefined ? undefined : this.records.get(question.name.toLowerCase());
    const answers: dnsPacket.Answer[] =
      question?.type === 'A' && addresses !== undefined
        ? addresses.map((data) => ({ type: 'A', name: question.name, ttl: 1, class: 'IN', data }))
        : [];
    const response = dnsPacket.encode({
      id: query.id ?? 0,
      type: 'response',
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (addresses === undefined ? 3 : 0),
      questions: query.questions ?? [],
      answers,
    });
    this.socket.send(response, remote.port, remote.address);
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}
