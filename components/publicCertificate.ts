// The LB's public certificate, per mode: self-signed (@pulumi/tls), Let's Encrypt (obtained on the
// node, persisted in SSM), or an exportable ACM certificate validated by DNS.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import { CertificateMode } from "../model/config";
import { parameterName } from "../model/naming";
import { NodeSpec } from "../model/topology";
import { AwsAccount } from "../model/aws";
import { Tagger } from "../model/tags";
import { CertificateSetup } from "../cloud-init/loadBalancer";
import { ssmParameter } from "./parameter";
import {
  PolicyDocument,
  exportSiteCertificatePolicy,
  persistSiteCertificatePolicy,
} from "./iamPolicies";

export interface PublicCertificateArgs {
  /** The node that serves the certificate (the LB): its parameters live under its path. */
  readonly node: NodeSpec;
  readonly mode: CertificateMode;
  /** The FQDN served. */
  readonly domain: string;
  readonly stack: string;
  /** Route53 zone id that holds `domain` (required for `acm`). */
  readonly zoneId?: pulumi.Input<string>;
  /** ACME contact and directory (for `letsencrypt`). */
  readonly acmeEmail?: string;
  readonly acmeDirectory: string;
  readonly parameterKeyId: pulumi.Input<string>;
  readonly parameterKeyArn: pulumi.Input<string>;
  readonly account: pulumi.Input<AwsAccount>;
  readonly tags: Tagger;
}

/** The LB's parameters live under its own path; nothing else may read them. */
const SITE_CERT = "site-cert";
const SITE_KEY = "site-key";
const SITE_PEM = "site-pem";
const ACM_PASSPHRASE = "acm-passphrase";
/** What the site-pem parameter holds until the LB stores a real certificate. */
export const SITE_PEM_UNSET = "none";

export class PublicCertificate extends pulumi.ComponentResource {
  readonly mode: CertificateMode;
  /** What the LB's bundle needs to get the certificate. */
  readonly setup: pulumi.Output<CertificateSetup>;
  /** Extra permissions of the LB's role for this mode (none for self-signed). */
  readonly lbPolicy?: pulumi.Output<PolicyDocument>;
  readonly acmCertificateArn?: pulumi.Output<string>;

  constructor(name: string, args: PublicCertificateArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:edge:PublicCertificate", name, {}, opts);
    this.mode = args.mode;
    const child = { parent: this };
    const tags = (what: string) => args.tags(args.node.role, `${args.node.name}-${what}`);
    const param = (key: string) => parameterName(args.stack, args.node.name, key);
    const secureParameter = (
      key: string,
      value: pulumi.Input<string>,
      what: string,
      opts: pulumi.CustomResourceOptions = child,
    ) =>
      ssmParameter(
        `${name}-${key}`,
        {
          name: param(key),
          description: `webstack ${args.stack} lb: ${what}`,
          value,
          keyId: args.parameterKeyId,
          tags: tags(key),
        },
        opts,
      );

    switch (args.mode) {
      case "self-signed": {
        const key = new tls.PrivateKey(
          `${name}-key`,
          { algorithm: "ECDSA", ecdsaCurve: "P256" },
          child,
        );
        const cert = new tls.SelfSignedCert(
          `${name}-self-signed`,
          {
            privateKeyPem: key.privateKeyPem,
            subject: { commonName: args.domain, organization: `webstack ${args.stack}` },
            dnsNames: [args.domain],
            validityPeriodHours: 365 * 24,
            earlyRenewalHours: 30 * 24,
            allowedUses: ["digital_signature", "key_encipherment", "server_auth"],
          },
          child,
        );
        ssmParameter(
          `${name}-${SITE_CERT}`,
          {
            name: param(SITE_CERT),
            description: `webstack ${args.stack} lb: the self-signed site certificate (public)`,
            value: cert.certPem,
            tags: tags(SITE_CERT),
          },
          child,
        );
        secureParameter(
          SITE_KEY,
          key.privateKeyPem,
          "private key of the self-signed site certificate",
        );
        this.setup = pulumi.output({
          mode: "self-signed" as const,
          parameters: { cert: param(SITE_CERT), key: param(SITE_KEY) },
        });
        break;
      }
      case "letsencrypt": {
        if (!args.acmeEmail) throw new Error("PublicCertificate: letsencrypt needs acmeEmail");
        // The LB writes the value; Pulumi owns the parameter's existence (a destroy removes it).
        secureParameter(
          SITE_PEM,
          SITE_PEM_UNSET,
          "the Let's Encrypt certificate and key the LB obtained",
          {
            parent: this,
            ignoreChanges: ["value"],
          } as pulumi.CustomResourceOptions,
        );
        this.setup = pulumi.output(args.parameterKeyId).apply((parameterKeyId) => ({
          mode: "letsencrypt" as const,
          acmeEmail: args.acmeEmail!,
          acmeDirectory: args.acmeDirectory,
          parameters: { sitePem: param(SITE_PEM) },
          parameterKeyId,
        }));
        this.lbPolicy = pulumi
          .all([args.account, args.parameterKeyArn])
          .apply(([account, keyArn]) =>
            persistSiteCertificatePolicy(account, param(SITE_PEM), keyArn),
          );
        break;
      }
      case "acm": {
        if (!args.zoneId) throw new Error("PublicCertificate: acm needs a Route53 zone");
        const cert = new aws.acm.Certificate(
          `${name}-acm`,
          {
            domainName: args.domain,
            validationMethod: "DNS",
            keyAlgorithm: "EC_prime256v1",
            // Exportable: the only kind of public ACM certificate an EC2 instance can use.
            options: { export: "ENABLED" },
            tags: tags("acm"),
          },
          child,
        );
        const validation = cert.domainValidationOptions.apply((options) => options[0]);
        const record = new aws.route53.Record(
          `${name}-acm-validation`,
          {
            zoneId: args.zoneId,
            name: validation.resourceRecordName,
            type: validation.resourceRecordType,
            records: [validation.resourceRecordValue],
            ttl: 300,
            allowOverwrite: true,
          },
          child,
        );
        const validated = new aws.acm.CertificateValidation(
          `${name}-acm-validated`,
          { certificateArn: cert.arn, validationRecordFqdns: [record.fqdn] },
          child,
        );
        // ACM takes ASCII without #, $ or %: letters and digits only.
        const passphrase = new random.RandomPassword(
          `${name}-acm-passphrase`,
          { length: 32, special: false },
          child,
        );
        secureParameter(
          ACM_PASSPHRASE,
          passphrase.result,
          "passphrase of the ACM certificate export",
        );
        this.acmCertificateArn = validated.certificateArn;
        this.setup = validated.certificateArn.apply((certificateArn) => ({
          mode: "acm" as const,
          certificateArn,
          parameters: { passphrase: param(ACM_PASSPHRASE) },
        }));
        this.lbPolicy = validated.certificateArn.apply(exportSiteCertificatePolicy);
        break;
      }
    }
    this.registerOutputs({ setup: this.setup });
  }
}
