import { createInterface } from 'node:readline';
import type { CliContext } from './command.js';

export type InterruptOutcome = 'cancel' | 'continue' | 'detach';

/**
 * Ctrl-C while a run is followed. With a person at the keyboard (stdin a terminal) it asks
 * "cancel the run? [y/N]" (a second Ctrl-C at the prompt means yes). Without one (a script, CI,
 * `kill -INT`), there is nobody to ask: the run is cancelled at once, since a caller that
 * interrupts its job wants the work, and its bill, to stop. Once cancel was asked, another Ctrl-C
 * stops waiting for the run to end.
 */
export class InterruptHandler {
  private asking = false;
  private cancelled = false;
  private readonly listener = () => void this.onSigint();

  constructor(
    private readonly ctx: CliContext,
    private readonly runId: string,
    private readonly act: (outcome: InterruptOutcome) => void,
    /** Called before and after the prompt, so a redrawn status line does not overwrite it. */
    private readonly pause: (paused: boolean) => void = () => undefined,
  ) {}

  install(): void {
    this.ctx.signals.on('SIGINT', this.listener);
  }

  remove(): void {
    this.ctx.signals.off('SIGINT', this.listener);
  }

  private async onSigint(): Promise<void> {
    if (this.cancelled) return this.act('detach');
    if (this.asking) return;
    if (this.ctx.stdin.isTTY !== true) return this.decide('cancel');
    this.asking = true;
    this.pause(true);
    const yes = await this.ask(`\ncancel the run ${this.runId}? [y/N] `);
    this.asking = false;
    // Decided while still paused: what the decision prints lands on a clean line.
    this.decide(yes ? 'cancel' : 'continue');
    this.pause(false);
  }

  private decide(outcome: InterruptOutcome): void {
    if (outcome === 'cancel') this.cancelled = true;
    this.act(outcome);
  }

  private ask(question: string): Promise<boolean> {
    return new Promise((resolve) => {
      const rl = createInterface({ input: this.ctx.stdin, output: this.ctx.stderr as NodeJS.WritableStream });
      let done = false;
      const finish = (yes: boolean) => {
        if (done) return;
        done = true;
        rl.close();
        resolve(yes);
      };
      rl.on('SIGINT', () => finish(true));
      rl.on('close', () => finish(false));
      rl.question(question, (answer) => finish(/^\s*y(es)?\s*$/i.test(answer)));
    });
  }
}
