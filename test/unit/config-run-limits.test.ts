import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { DEFAULT_RUN_LIMITS } from '../../src/events/limits.js';

describe('per-run output limits in the configuration', () => {
  it('default to DEFAULT_RUN_LIMITS and take sizes with units', () => {
    expect(loadConfig({}).runLimits).toEqual(DEFAULT_RUN_LIMITS);
    const set = loadConfig({
      RUN_MAX_LINE_BYTES: '8m',
      RUN_MAX_EVENT_TEXT_BYTES: '32k',
      RUN_MAX_MESSAGE_BYTES: '1m',
      RUN_MAX_EVENTS: '500',
      RUN_MAX_STREAM_BYTES: '1g',
    }).runLimits;
    expect(set).toEqual({
      maxLineBytes: 8 * 1024 * 1024,
      maxEventTextBytes: 32 * 1024,
      maxMessageBytes: 1024 * 1024,
      maxEvents: 500,
      maxStreamBytes: 1024 ** 3,
    });
  });

  it('a value out of range stops the start, naming the variable and the range', () => {
    expect(() => loadConfig({ RUN_MAX_EVENTS: '5' })).toThrow(
      /RUN_MAX_EVENTS: must be a whole number from 100/,
    );
    expect(() => loadConfig({ RUN_MAX_LINE_BYTES: '1k' })).toThrow(
      /RUN_MAX_LINE_BYTES: must be a size from 64k to 256m/,
    );
    expect(() => loadConfig({ RUN_MAX_STREAM_BYTES: 'lots' })).toThrow(
      /RUN_MAX_STREAM_BYTES: must be a size like/,
    );
  });
});
