// Runs the real program under Pulumi mocks and records every resource and the stack outputs.
import * as pulumi from "@pulumi/pulumi";
import { decodeUserData } from "../cloud-init/userDataEncoding";
import { PROJECT } from "../model/naming";
import { OutputOverride, PlanMocks } from "./mocks";
import { isWrappedSecret, wrapSecret } from "./secrets";

/** Resource options the engine would see; only the ones set (or inherited, for protect) appear. */
export interface PlannedOptions {
  readonly protect?: boolean;
  readonly ignoreChanges?: string[];
  readonly replaceOnChanges?: string[];
  readonly deleteBeforeReplace?: boolean;
  readonly retainOnDelete?: boolean;
  readonly dependsOn?: string[];
}

export interface PlannedResource {
  readonly urn: string;
  readonly type: string;
  readonly name: string;
  /** URN of the parent; absent only for the stack itself. */
  readonly parent?: string;
  /** Absent for components and the stack. */
  readonly id?: string;
  /** As the provider receives them; secrets in Pulumi's wire form (see plan/secrets.ts). */
  readonly inputs: Record<string, unknown>;
  readonly outputs: Record<string, unknown>;
  readonly options: PlannedOptions;
}

export interface Plan {
  readonly stack: string;
  readonly resources: PlannedResource[];
  readonly outputs: Record<string, unknown>;
  /** What the program warned about (`pulumi.log.warn`), as `pulumi up` would print it. */
  readonly warnings: string[];
}

export interface PlanOptions {
  readonly stack: string;
  /** Namespaced config (`webstack:domain`, `aws:region`) with string values. */
  readonly config: Readonly<Record<string, string>>;
  /** Keys among `config` that Pulumi would hold encrypted. */
  readonly secretKeys?: readonly string[];
  /** Outputs computed by the caller for some resources (see OutputOverride). */
  readonly override?: OutputOverride;
  /** The account id the mocks answer with. @default DEFAULT_ACCOUNT_ID */
  readonly accountId?: string;
  /** The release of the newest Debian image the AMI look-up finds. @default DEFAULT_IMAGE_RELEASE */
  readonly imageRelease?: string;
}

/** The account the plan pretends to run in, unless told otherwise. */
export const DEFAULT_ACCOUNT_ID = "123456789012";

export class PlanError extends Error {}

/** A planned instance's user-data as the instance boots it: the plain document, however shipped. */
export function plannedUserData(instance: PlannedResource): string {
  return decodeUserData(instance.inputs);
}

type Program = () => Promise<Record<string, unknown>>;

interface Seen {
  readonly resource: pulumi.Resource;
  readonly type: string;
  readonly name: string;
  readonly parent: pulumi.Resource;
  readonly opts: pulumi.ResourceOptions;
}

function settled<T>(output: pulumi.Output<T>): Promise<T> {
  // Plans run with preview=false, so every output is known and apply always runs.
  return new Promise((resolve, reject) => {
    output.apply(resolve);
    (output as unknown as { promise(): Promise<T> }).promise().catch(reject);
  });
}

/**
 * The outputs with those the resource declares secret (`additionalSecretOutputs`: a TLS key's PEM,
 * a random password's result, as their SDK classes set it) wrapped as secrets, as Pulumi keeps them
 * in state: the mocks compute them in plain text.
 */
function withSecretOutputs(
  outputs: Record<string, unknown>,
  opts: pulumi.ResourceOptions,
): Record<string, unknown> {
  const secret = new Set((opts as pulumi.CustomResourceOptions).additionalSecretOutputs ?? []);
  return Object.fromEntries(
    Object.entries(outputs).map(([key, value]) => [
      key,
      secret.has(key) && !isWrappedSecret(value) ? wrapSecret(value) : value,
    ]),
  );
}

/** A resource's inputs with each top-level asset as `{ asset: "file", path }`. */
async function settleAssets(inputs: Record<string, unknown>): Promise<Record<string, unknown>> {
  const entries = await Promise.all(
    Object.entries(inputs).map(async ([key, value]) => {
      const asset = value as { __pulumiAsset?: boolean; path?: unknown } | null;
      if (typeof asset !== "object" || asset === null || !asset.__pulumiAsset) return [key, value];
      if (asset.path === undefined) throw new PlanError(`${key}: only file assets are planned`);
      return [key, { asset: "file", path: await asset.path }];
    }),
  );
  return Object.fromEntries(entries);
}

/** Resolves Outputs and promises in the program's return value, keeping secrets wrapped. */
async function resolveDeep(value: unknown): Promise<unknown> {
  if (pulumi.Output.isInstance(value)) {
    const [inner, secret] = await Promise.all([settled(value), pulumi.isSecret(value)]);
    const resolved = await resolveDeep(inner);
    return secret ? wrapSecret(resolved) : resolved;
  }
  if (value instanceof Promise) return resolveDeep(await value);
  if (pulumi.Resource.isInstance(value)) return settled(value.urn);
  if (Array.isArray(value)) return Promise.all(value.map(resolveDeep));
  if (typeof value === "object" && value !== null) {
    const entries = await Promise.all(
      Object.entries(value).map(async ([k, v]) => [k, await resolveDeep(v)]),
    );
    return Object.fromEntries(entries);
  }
  return value;
}

function plannedOptions(
  opts: pulumi.ResourceOptions,
  protect: boolean,
  dependsOn: string[],
): PlannedOptions {
  const custom = opts as pulumi.CustomResourceOptions;
  const picked: Record<string, unknown> = {
    protect: protect || undefined,
    ignoreChanges: opts.ignoreChanges,
    replaceOnChanges: opts.replaceOnChanges,
    deleteBeforeReplace: custom.deleteBeforeReplace,
    retainOnDelete: opts.retainOnDelete,
    dependsOn: dependsOn.length > 0 ? dependsOn : undefined,
  };
  return Object.fromEntries(
    Object.entries(picked).filter(([, v]) => v !== undefined),
  ) as PlannedOptions;
}

/**
 * Runs index.ts's program once under mocks. Throws the program's own error (a ConfigError for bad
 * config, before any resource exists). Runs are sequential: Pulumi's runtime state is global.
 */
export async function runPlan(options: PlanOptions): Promise<Plan> {
  const region = options.config["aws:region"];
  if (!region)
    throw new PlanError("aws:region: missing; set it with pulumi config set aws:region <region>");
  const mocks = new PlanMocks(
    { region, accountId: options.accountId ?? DEFAULT_ACCOUNT_ID },
    options.override,
    options.imageRelease,
  );
  await pulumi.runtime.setMocks(mocks, PROJECT, options.stack, false);
  pulumi.runtime.setAllConfig({ ...options.config }, [...(options.secretKeys ?? [])]);

  // Loaded only now: nothing may be created before the mocks are in place.
  const program = require("../index") as Program;
  const seen: Seen[] = [];
  let stackResource: pulumi.Resource | undefined;
  let failure: unknown;
  let returned: Record<string, unknown> = {};
  // A failed invoke or registration surfaces as an unhandled rejection inside Pulumi's runtime,
  // and whatever waits on that resource waits forever: fail the plan with the first one.
  let fail: (reason: unknown) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  process.on("unhandledRejection", fail);
  // Without an engine, Pulumi prints warnings to the console; the plan keeps them instead.
  const warnings: string[] = [];
  const log = pulumi.log as { warn: typeof pulumi.log.warn };
  const warn = log.warn;
  log.warn = async (message: string) => void warnings.push(message);
  try {
    return await Promise.race([record(), failed]);
  } catch (err) {
    throw mocks.failures[0] ?? err;
  } finally {
    process.off("unhandledRejection", fail);
    log.warn = warn;
  }

  async function record(): Promise<Plan> {
    await pulumi.runtime.runInPulumiStack(async () => {
      stackResource = pulumi.runtime.getStackResource();
      pulumi.runtime.registerStackTransformation(({ resource, type, name, opts }) => {
        seen.push({ resource, type, name, parent: opts.parent ?? stackResource!, opts });
        return undefined;
      });
      try {
        returned = await program();
      } catch (err) {
        failure = err;
      }
      return {};
    });
    if (failure) throw failure;
    if (!stackResource) throw new PlanError("the program ran without a root stack resource");

    // A resource's URN resolves once the mock registered it, so this also waits for every registration.
    const urnOf = new Map<pulumi.Resource, string>();
    const all = [stackResource, ...seen.map((s) => s.resource)];
    await Promise.all(all.map(async (r) => urnOf.set(r, await settled(r.urn))));
    const outputs = (await resolveDeep(returned)) as Record<string, unknown>;

    const byKey = new Map<string, Seen>();
    for (const s of seen) {
      const key = `${s.type}::${s.name}`;
      if (byKey.has(key)) throw new PlanError(`two resources share type and name ${key}`);
      byKey.set(key, s);
    }
    // protect is inherited from the parent; `seen` is in construction order, parents first.
    const protectOf = new Map<pulumi.Resource, boolean>();
    for (const s of seen) {
      protectOf.set(s.resource, s.opts.protect ?? protectOf.get(s.parent) ?? false);
    }
    const optionsOf = (s: Seen): PlannedOptions => {
      const deps = ([] as pulumi.Resource[]).concat(
        (s.opts.dependsOn as pulumi.Resource[] | undefined) ?? [],
      );
      return plannedOptions(
        s.opts,
        protectOf.get(s.resource)!,
        deps.map((d) => urnOf.get(d) ?? "(unknown)"),
      );
    };

    // A file asset (an app release's archive) arrives with its path as a promise: the path, plainly.
    const inputsOf = new Map(
      await Promise.all(
        mocks.resources.map(async (m) => [m, await settleAssets(m.inputs)] as const),
      ),
    );
    const resources = mocks.resources.map((m): PlannedResource => {
      const s = byKey.get(`${m.type}::${m.name}`);
      const isStack = m.type === "pulumi:pulumi:Stack";
      if (!s && !isStack)
        throw new PlanError(`resource ${m.type}::${m.name} was registered outside the stack`);
      return {
        urn: s ? urnOf.get(s.resource)! : urnOf.get(stackResource!)!,
        type: m.type,
        name: m.name,
        ...(s ? { parent: urnOf.get(s.parent)! } : {}),
        ...(m.id !== undefined ? { id: m.id } : {}),
        inputs: inputsOf.get(m)!,
        outputs: s ? withSecretOutputs(m.outputs, s.opts) : m.outputs,
        options: s ? optionsOf(s) : {},
      };
    });
    // Construction order is the program's own order, stable from run to run.
    const order = new Map(seen.map((s, i) => [`${s.type}::${s.name}`, i]));
    resources.sort(
      (a, b) =>
        (order.get(`${a.type}::${a.name}`) ?? -1) - (order.get(`${b.type}::${b.name}`) ?? -1),
    );
    return { stack: options.stack, resources, outputs, warnings: [...warnings] };
  }
}
