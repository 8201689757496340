import path from 'node:path';
import ts from 'typescript';

/**
 * Every error and warning code the server can hand a user, read from src/ with the TypeScript
 * checker: the code argument (or the default) of each AppError helper call, and every string
 * literal type a property named `code` is given (run errors, `run.warning` events, envelopes).
 * The checker resolves constants, conditionals and unions, so a code behind a variable counts too.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');

/** Each helper of src/errors.ts: which argument is the code, and its default. */
const HELPERS: Record<string, { arg: number; fallback?: string }> = {
  badRequest: { arg: 2, fallback: 'invalid_request' },
  unprocessable: { arg: 2, fallback: 'unprocessable_runbook' },
  notFound: { arg: 1, fallback: 'not_found' },
  conflict: { arg: 1, fallback: 'conflict' },
  unavailable: { arg: 1, fallback: 'dependency_unavailable' },
  infraError: { arg: 1 },
  jsonTooDeep: { arg: 99, fallback: 'json_too_deep' },
};

/**
 * Not ours to explain: the simulated provider imitates the providers' own error bodies, the browser
 * page only reads codes, and zod's issue code `custom` is never shown as a code.
 */
const SKIP_DIRS = ['src/providers/simulated/', 'src/web/'];
const NOT_CODES = new Set(['custom']);

export interface CodeSite {
  code: string;
  file: string;
}

export function collectErrorCodes(): CodeSite[] {
  const files = ts.sys
    .readDirectory(path.join(ROOT, 'src'), ['.ts'])
    .filter((f) => !SKIP_DIRS.some((d) => f.includes(`/${d}`)));
  const program = ts.createProgram(files, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    skipLibCheck: true,
    noEmit: true,
    // Only src/ matters: leaving out node_modules' types keeps this a few seconds, not twenty.
    types: [],
    noResolve: true,
    noLib: true,
  });
  const checker = program.getTypeChecker();
  const found = new Map<string, CodeSite>();
  const add = (code: string, file: string) => {
    if (!NOT_CODES.has(code) && !found.has(code)) found.set(code, { code, file: path.relative(ROOT, file) });
  };
  for (const sf of program.getSourceFiles()) {
    if (!files.includes(sf.fileName)) continue;
    const visit = (node: ts.Node) => {
      for (const code of codesAt(node, checker)) add(code, sf.fileName);
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return [...found.values()].sort((a, b) => a.code.localeCompare(b.code));
}

function codesAt(node: ts.Node, checker: ts.TypeChecker): string[] {
  if (ts.isPropertyAssignment(node) && propertyName(node.name) === 'code') {
    return literalStrings(checker.getTypeAtLocation(node.initializer));
  }
  if (ts.isShorthandPropertyAssignment(node) && node.name.text === 'code') {
    return literalStrings(checker.getTypeAtLocation(node.name));
  }
  if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'AppError') {
    return []; // its options object is a property assignment `code: ...`, visited on its own
  }
  if (ts.isCallExpression(node) && ts.isIdentifier(node.expression)) {
    const helper = HELPERS[node.expression.text];
    if (!helper) return [];
    const arg = node.arguments[helper.arg];
    if (!arg) return helper.fallback ? [helper.fallback] : [];
    return literalStrings(checker.getTypeAtLocation(arg));
  }
  return [];
}

function propertyName(name: ts.PropertyName): string | undefined {
  return ts.isIdentifier(name) || ts.isStringLiteral(name) ? name.text : undefined;
}

/** The string literal values of a type (one literal, or a union of them); none for plain `string`. */
function literalStrings(type: ts.Type): string[] {
  const parts = type.isUnion() ? type.types : [type];
  return parts.filter((t): t is ts.StringLiteralType => t.isStringLiteral()).map((t) => t.value);
}
