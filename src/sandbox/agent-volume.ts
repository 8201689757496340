import type Dockerode from 'dockerode';
import { AppError } from '../errors.js';
import { dockerMessage, dockerStatus, toAppError } from './docker-exec.js';

/**
 * The agent layer of a sandbox: a runtime's CLI with its own runtime, the forwarder and the
 * static tools, under /opt/jetty in an image built from docker/agents/<runtime>/. Sandboxes mount
 * it read-only from a Docker named volume, filled from that image by the engine itself (an empty
 * named volume mounted where an image has files gets a copy of them when the container is
 * created). So it needs no directory shared with the engine's host and works with a remote
 * DOCKER_HOST. The volume is named after the layer image's name and id: a new build of the layer
 * gets a new volume, and an existing one is never changed.
 */
export const AGENT_MOUNT = '/opt/jetty';
/** The layer's static shell: the holder, the driver's own scripts and the entrypoint run with it. */
export const LAYER_SHELL = [`${AGENT_MOUNT}/bin/busybox`, 'sh'] as const;
/** GNU head, tar and find of the layer: the environment's own may be missing or different. */
export const LAYER_TOOLS = `${AGENT_MOUNT}/tools`;
export const LAYER_ENTRYPOINT = [...LAYER_SHELL, `${AGENT_MOUNT}/entrypoint.sh`] as const;
export const LAYER_PROBE = [...LAYER_SHELL, `${AGENT_MOUNT}/probe.sh`] as const;

export const AGENT_VOLUME_LABEL = 'jetty.agent-layer';
/** How long a worker waits for another one filling the same volume. */
const FILL_WAIT_MS = 120_000;

export class AgentVolumes {
  private readonly ready = new Map<string, Promise<string>>();

  constructor(private readonly docker: Dockerode) {}

  /** The filled volume of this layer image (made on first use); a missing image is a typed error. */
  async volumeFor(image: string): Promise<string> {
    const id = await this.imageId(image);
    const name = volumeName(image, id);
    let p = this.ready.get(name);
    if (!p) {
      p = this.ensure(image, name);
      this.ready.set(name, p);
      // A failure is not remembered: the next run tries again.
      p.catch(() => this.ready.delete(name));
    }
    return p;
  }

  private async imageId(image: string): Promise<string> {
    try {
      return (await this.docker.getImage(image).inspect()).Id;
    } catch (err) {
      if (dockerStatus(err) === 404) throw agentLayerMissing(image, err);
      throw toAppError(err, `could not inspect the agent layer image ${image}`);
    }
  }

  /**
   * Fills the volume by creating (never starting) a container of the layer image with it mounted.
   * The container's name is taken before the engine makes the volume, so a worker that finds the
   * volume while that container exists knows it is still being filled, and waits.
   */
  private async ensure(image: string, name: string): Promise<string> {
    const filler = `${name}-fill`;
    for (const until = Date.now() + FILL_WAIT_MS; Date.now() < until; ) {
      if (await this.exists(() => this.docker.getVolume(name).inspect())) {
        if (!(await this.exists(() => this.docker.getContainer(filler).inspect()))) return name;
      } else {
        try {
          const c: Dockerode.Container = await this.docker.createContainer({
            name: filler,
            Image: image,
            // Never run: the image holds files only.
            Cmd: ['/opt/jetty/bin/busybox', 'true'],
            Labels: { [AGENT_VOLUME_LABEL]: image },
            HostConfig: {
              NetworkMode: 'none',
              Mounts: [
                {
                  Type: 'volume',
                  Source: name,
                  Target: AGENT_MOUNT,
                  VolumeOptions: {
                    Labels: { [AGENT_VOLUME_LABEL]: image },
                  } as unknown as Dockerode.MountSettings['VolumeOptions'],
                },
              ],
            },
          });
          await c.remove({ force: true });
          return name;
        } catch (err) {
          // 409: another worker is filling it right now.
          if (dockerStatus(err) !== 409) throw toAppError(err, `could not fill the agent volume ${name}`);
        }
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new AppError(`the agent volume ${name} was still being filled after ${FILL_WAIT_MS / 1000} s`, {
      status: 503,
      type: 'server_error',
      code: 'agent_layer_unavailable',
      retryable: true,
    });
  }

  private async exists(inspect: () => Promise<unknown>): Promise<boolean> {
    try {
      await inspect();
      return true;
    } catch (err) {
      if (dockerStatus(err) === 404) return false;
      throw toAppError(err, `could not inspect the agent volume: ${dockerMessage(err)}`);
    }
  }
}

/** `jetty-agent-claude-code-2.1.197-<12 hex of the image id>`: runtime, version and build. */
export function volumeName(image: string, imageId: string): string {
  const base = image
    .replace(/^.*\//, '')
    .replace(/^agent-/, '')
    .replace(/[^A-Za-z0-9_.-]/g, '-');
  return `jetty-agent-${base}-${imageId.replace(/^sha256:/, '').slice(0, 12)}`;
}

function agentLayerMissing(image: string, cause: unknown): AppError {
  return new AppError(
    `the agent layer image ${image} is not on this Docker engine; build it with \`bash docker/build-images.sh\``,
    { status: 500, type: 'server_error', code: 'sandbox_image_missing', retryable: false, cause },
  );
}
