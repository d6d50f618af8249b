import { CustomResource, RemovalPolicy } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import type { Construct } from 'constructs';

export interface FunctionCustomResourceProps {
  /** Handles the CloudFormation events; its error message becomes the resource's failure reason. */
  readonly onEventHandler: lambda.IFunction;
  /** `Custom::...`. */
  readonly resourceType: string;
  readonly properties: Readonly<Record<string, string>>;
  /** Of the Provider framework's own log group. */
  readonly logRetention: logs.RetentionDays;
}

/** What {@link addFunctionCustomResource} created. */
export interface FunctionCustomResource {
  readonly resource: CustomResource;
  /** The Provider framework (a CDK-made Lambda function outside the VPC that calls the handler). */
  readonly provider: cr.Provider;
}

/**
 * A custom resource backed by one of Spillway's functions: the Provider framework, its log group
 * (removed with the stack) and the resource, added to `scope` itself (`Provider`, `ProviderLogs`,
 * `Resource`) so that the constructs using it keep their logical ids.
 */
export function addFunctionCustomResource(
  scope: Construct,
  props: FunctionCustomResourceProps,
): FunctionCustomResource {
  const provider = new cr.Provider(scope, 'Provider', {
    onEventHandler: props.onEventHandler,
    logGroup: new logs.LogGroup(scope, 'ProviderLogs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    }),
  });
  const resource = new CustomResource(scope, 'Resource', {
    serviceToken: provider.serviceToken,
    resourceType: props.resourceType,
    properties: props.properties,
  });
  return { resource, provider };
}
