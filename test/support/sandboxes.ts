import type Dockerode from 'dockerode';

/** A warm pool's sandbox that no run has claimed (src/sandbox/warm-pool.ts): it is no run's. */
export function isUnclaimedWarm(c: Dockerode.ContainerInfo): boolean {
  return c.Labels['jetty.pool'] !== undefined && c.Names.some((n) => n.startsWith('/jetty-warm-'));
}

/**
 * The run sandboxes of a server instance: every container it labelled, less the warm ones no run
 * has claimed (the pool keeps those until the worker stops; the harness checks they go then).
 */
export async function runSandboxesOf(
  docker: Dockerode,
  instance: string,
): Promise<Dockerode.ContainerInfo[]> {
  const all = await docker.listContainers({ all: true, filters: { label: [`jetty.instance=${instance}`] } });
  return all.filter((c) => !isUnclaimedWarm(c));
}

/**
 * The run sandboxes of a server instance still there once they have had `ms` to go: a worker
 * removes a run's sandbox just after the run's end is announced, not before it.
 */
export async function sandboxesLeft(
  docker: Dockerode,
  instance: string,
  ms = 10_000,
): Promise<Dockerode.ContainerInfo[]> {
  for (const until = Date.now() + ms; ; ) {
    const left = await runSandboxesOf(docker, instance);
    if (left.length === 0 || Date.now() >= until) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The sandbox of one run: labelled with it (a cold start), or renamed for it (a claimed warm one). */
export async function containersOfRun(docker: Dockerode, runId: string): Promise<Dockerode.ContainerInfo[]> {
  const [labelled, named] = await Promise.all([
    docker.listContainers({ all: true, filters: { label: [`jetty.run-id=${runId}`] } }),
    docker.listContainers({ all: true, filters: { name: [`^/jetty-run-${runId}$`] } }),
  ]);
  const seen = new Set(labelled.map((c) => c.Id));
  return [...labelled, ...named.filter((c) => !seen.has(c.Id))];
}

/** Removes, by id, every container of a deployment's key prefix (what a test's servers left), and says which. */
export async function removeDeploymentContainers(
  docker: Dockerode,
  keyPrefix: string,
): Promise<Dockerode.ContainerInfo[]> {
  const left = await docker.listContainers({
    all: true,
    filters: { label: [`jetty.key-prefix=${keyPrefix}`] },
  });
  for (const c of left)
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => undefined);
  return left;
}
