import type Docker from 'dockerode';

/**
 * Whether this node's engine can read Swarm's services and configs (a manager) or refuses them
 * (a worker). 'unknown' while the engine cannot be reached: the proxy then behaves as on a
 * manager and retries its reads, as it did before roles were told apart.
 */
export async function swarmRole(docker: Docker): Promise<'manager' | 'worker' | 'unknown'> {
  try {
    const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } };
    if (info.Swarm?.LocalNodeState !== 'active') return 'unknown';
    return info.Swarm.ControlAvailable === true ? 'manager' : 'worker';
  } catch {
    return 'unknown';
  }
}
