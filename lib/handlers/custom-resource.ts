/**
 * The slice of the CloudFormation custom resource protocol that the Provider framework hands to
 * an `onEvent` handler, and what such a handler returns. (Kept here rather than pulling in
 * `@types/aws-lambda` for two shapes.)
 */
export interface CustomResourceEvent {
  readonly RequestType: 'Create' | 'Update' | 'Delete';
  readonly PhysicalResourceId?: string;
  readonly ResourceProperties: Readonly<Record<string, unknown>>;
}

export interface CustomResourceResult {
  readonly PhysicalResourceId: string;
  readonly Data?: Readonly<Record<string, string>>;
}

/** A resource property that must be a non-empty string. */
export function stringProperty(event: CustomResourceEvent, name: string): string {
  const value = event.ResourceProperties[name];
  if (typeof value !== 'string' || value === '') {
    throw new Error(`custom resource property ${name} is missing`);
  }
  return value;
}
